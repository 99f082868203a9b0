//! The listening sockets on the canary ports and their owners (being written).

//! Evidence from the probe's own host: the listening sockets on the canary ports and their
//! owners.

pub mod listeners;
pub mod procfs;
pub mod sock_diag;

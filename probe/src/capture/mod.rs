//! Packet capture of the probe's own connections (being written).

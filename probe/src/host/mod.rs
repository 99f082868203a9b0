//! Evidence from the probe's own host: the listening sockets on the canary ports and their
//! owners, the neighbour table, the boot id, memory and pressure, the kernel log. What they
//! read comes through [`crate::os`].

pub(crate) mod boot;
pub(crate) mod kmsg;
pub mod listeners;
pub(crate) mod neighbours;
mod netlink;
mod pressure;
pub mod procfs;
pub mod sock_diag;
pub(crate) mod watch;

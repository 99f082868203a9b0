//! Evidence from the probe's own host.

pub mod listeners;

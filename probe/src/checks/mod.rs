//! One module per kind of check. Each turns its target into an outcome value: failures are
//! data for the report, never errors for the caller.

pub mod backends;
pub mod dns;
pub mod http;
pub mod reach;

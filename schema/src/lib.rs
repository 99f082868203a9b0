//! `causeway-schema`: the contract between Causeway's probe, collector and CLI.
//!
//! Wire types ([`Report`] and what it carries), the cause vocabulary ([`Cause`]), the pure
//! classifier ([`classify`]) and report validation. No I/O and no async runtime: everything
//! here is a function of its arguments, so it is tested with recorded evidence.

mod backends;
mod cause;
mod classify;
mod dns;
mod host;
mod listeners;
mod names;
mod newer;
mod report;
mod text;
mod tls;
mod trace;
mod validate;

pub use backends::*;
pub use cause::{Cause, UnknownCause};
pub use classify::{
    AddressCheck, Growth, classify, clock_verdict, disputed_addresses, host_conditions,
    judge_resolvers, memory_line, pressure_lines, s_unreclaim_growth,
};
pub use dns::*;
pub use host::*;
pub use listeners::*;
pub use names::{
    BadName, CANARY_NAME_RULE, CanaryName, MAX_CANARY_NAME, MAX_SERVER_NAME, SERVER_NAME_RULE,
    ServerName, is_valid_canary_name, is_valid_server_name,
};
pub use newer::NewerId;
pub use report::*;
pub use text::{
    DURATION_FORMS, compact_duration, cut, expiry_in, format_duration, parse_duration, rfc3339,
};
pub use tls::*;
pub use trace::*;
pub use validate::{FieldError, InvalidReport, MAX_RESULTS, quoted};

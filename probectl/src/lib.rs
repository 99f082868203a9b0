//! `probectl`, the operator's CLI: a client of the collector's read API. It links neither the
//! database nor the HTTP server: [`ctl`] parses the command line and runs a command,
//! [`client`] talks HTTP to the collector, [`why`] and [`table`] turn the API's answers into
//! text. The answers' shapes are `causeway-api`'s, shared with the collector.

pub mod client;
pub mod ctl;
pub mod table;
pub mod why;

// The shapes of the API's answers, under the names the modules here use.
pub use causeway_api::{duration, silences, timefmt, views};

//! `causeway-collector`: receives the probes' reports, stores them in SQLite, groups failures
//! into incidents and serves the read API and a web page. `probectl`, the operator's client of
//! that API, is a crate of its own; the API's shapes are `causeway-api`'s.
//!
//! One job per module: [`db`] opens the database, [`tokens`] authenticates probes, [`ingest`]
//! stores a report, its incidents and its resolvers' and host's conditions, [`read`] answers
//! queries, [`api`] maps HTTP to both, [`web`] renders the pages, [`metrics`] the Prometheus
//! text, [`share`] keeps customers' links, [`alerts`] tells people when a server goes down.

pub mod accept;
pub mod access;
pub mod access_cli;
pub mod alerts;
pub mod api;
pub mod cli;
pub mod clock;
pub mod db;
pub mod healthcheck;
pub mod idle;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod migrate_to;
pub mod names;
pub mod outbound;
pub mod read;
pub mod serve;
pub mod share;
pub mod silences;
pub mod tls;
pub mod tokens;
pub mod web;

// The read API's shapes and formats, shared with probectl, under the names used here.
pub use causeway_api::{duration, timefmt, views};

//! The web page: server-rendered HTML with inline SVG charts, a stylesheet and a small script
//! compiled into the binary. Nothing is fetched from elsewhere; every page works with
//! JavaScript off (sorting and filtering then go through the query string) and refreshes
//! itself. Everything that came from a probe is escaped ([`layout::esc`]).

pub mod charts;
pub mod customer;
pub mod evidence;
pub mod ladder;
pub mod layout;
pub mod overview;
pub mod server;

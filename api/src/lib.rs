//! `causeway-api`: the collector's read API as data, shared by the collector (which serves
//! it) and probectl (which reads it), so neither links the other: the JSON shapes
//! ([`views`], [`silences`]), server globs ([`glob`]), how times and durations are
//! written and read by people ([`timefmt`], [`duration`]), and the facts of a check's
//! evidence that the page and probectl both print ([`facts`]).

pub mod duration;
pub mod facts;
pub mod glob;
pub mod silences;
pub mod timefmt;
pub mod views;

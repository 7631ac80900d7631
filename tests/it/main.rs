//! Integration tests: one binary, many modules. Every test talks to a real
//! `freshet` server process over the Postgres wire protocol.

mod crash;
mod errors;
mod harness;
mod protocol;
mod slt;

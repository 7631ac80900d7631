//! Integration tests: one binary, many modules. Every test talks to a real
//! `freshet` server process over the Postgres wire protocol, except the
//! property tests, which drive the engine in process.

mod auth;
mod cdc;
mod chaos;
mod clients;
mod connectors;
mod crash;
mod databases;
mod differential;
mod docs;
mod errors;
mod harness;
mod indexes;
mod joins;
mod kafka;
mod limits;
mod mqtt;
mod nats;
mod nexmark;
mod oracle;
mod props;
mod protocol;
mod psql;
mod querygen;
mod rabbitmq;
mod raw;
mod slt;
mod sqlite_corpus;
mod storage;
mod subqueries;
mod tpch;
mod view_errors;
mod windows;

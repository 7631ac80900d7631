//! Freshet: a streaming SQL database that speaks the Postgres wire protocol.
//!
//! # The life of a statement
//!
//! 1. [`server`] accepts a Postgres connection (simple and extended query
//!    protocol, COPY) and hands each statement to a [`engine::session::Session`].
//! 2. [`sql`] parses it: Postgres SQL through sqlparser plus Freshet's own
//!    grammar (`CREATE SOURCE`, `WATERMARK FOR`, `SHOW SOURCES`, ...).
//! 3. A query is planned by DataFusion over table providers that read one
//!    consistent [`engine::data::DbSnapshot`] of every relation.
//! 4. A write (`INSERT`, `COPY`, `UPDATE`, `DELETE`) is converted into rows of
//!    the relation's column types — a bad value fails the whole statement —
//!    and sent to the committer ([`engine::commit`]).
//! 5. The committer appends it to the relation's log in [`store`], flushes
//!    once for every write waiting (group commit), applies it to the
//!    in-memory state, publishes a new snapshot, and only then acknowledges.
//! 6. Still in the committer, the change flows as a delta through the
//!    circuit of every materialized view that reads the relation
//!    ([`dataflow`]), and each view's stored contents are updated, before
//!    the snapshot that makes the write visible is published.
//! 7. At start-up the engine rebuilds every relation by replaying its log,
//!    checking each entry's CRC, and restores views from their last
//!    checkpoint plus the log tail.

pub mod auth;
pub mod catalog;
pub mod connectors;
pub mod database;
pub mod dataflow;
pub mod engine;
pub mod index;
pub mod ingest;
pub mod pgtext;
pub mod schema;
pub mod server;
pub mod sql;
pub mod store;
pub mod txn;
pub mod types;

pub use engine::{Engine, EngineConfig, EngineError};

/// Stack size of the threads that parse, plan, evaluate and drop
/// statements (the runtime's workers, the committer): enough for the
/// deepest statement accepted (`sql::depth::MAX_DEPTH`).
pub const STACK_BYTES: usize = 256 << 20;

//! The engine's error type. Each variant says what went wrong in terms the
//! wire layer can map to a SQLSTATE; nothing here knows SQLSTATE codes.

use datafusion::error::DataFusionError;

use crate::catalog::CatalogError;
use crate::ingest::coerce::CellErrorKind;
use crate::ingest::copy::{CopyError, CopyErrorKind};
use crate::sql::SqlError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Txn(#[from] crate::txn::TxnError),
    #[error(transparent)]
    Database(#[from] crate::database::DatabaseError),
    #[error(transparent)]
    Connector(#[from] crate::connectors::ConnectorError),
    /// A value that does not fit its column (row and column in the message).
    #[error("{message}")]
    Value {
        kind: CellErrorKind,
        message: String,
    },
    #[error("{0}")]
    UniqueViolation(String),
    #[error("{0}")]
    CardinalityViolation(String),
    #[error("{0}")]
    BadCopyData(String),
    #[error("{0}")]
    CharacterNotInRepertoire(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("{0}")]
    WrongObjectType(String),
    #[error("{0}")]
    SyntaxError(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    ProtocolViolation(String),
    #[error("{0}")]
    SerializationFailure(String),
    #[error("{0}")]
    UndefinedCursor(String),
    #[error("{0}")]
    UndefinedPreparedStatement(String),
    #[error("{0}")]
    DuplicateObject(String),
    #[error("{0}")]
    DependentObjects(String),
    /// A definition that cannot replace the existing one (42P16).
    #[error("{0}")]
    InvalidTableDefinition(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A statement needs more memory than its limit (53200).
    #[error("{0}")]
    OutOfMemory(String),
    /// `statement_timeout` passed (57014).
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    #[error("canceling statement due to user request")]
    StatementCanceled,
    /// Reading a materialized view in an error state; the SQLSTATE is the
    /// cause's.
    #[error("materialized view \"{view}\" is in an error state (ALTER MATERIALIZED VIEW … RECOMPUTE rebuilds it, DROP removes it): {cause}")]
    ViewFailed { view: String, cause: Failure },
    #[error("{0}")]
    Internal(String),
}

impl From<CopyError> for EngineError {
    fn from(e: CopyError) -> Self {
        match e.kind {
            CopyErrorKind::BadData => EngineError::BadCopyData(e.message),
            CopyErrorKind::Encoding => EngineError::CharacterNotInRepertoire(e.message),
            CopyErrorKind::TooBig => EngineError::OutOfMemory(e.message),
            CopyErrorKind::Cell(kind) => EngineError::Value {
                kind,
                message: e.message,
            },
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        EngineError::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Why a materialized view is in an error state, shared by its readers.
pub type Failure = std::sync::Arc<EngineError>;

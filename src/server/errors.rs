//! Engine errors to Postgres errors: the only place SQLSTATE codes live.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::engine::EngineError;
use crate::ingest::coerce::CellErrorKind;
use crate::sql::SqlError;
use crate::store::StoreError;

pub fn sqlstate(e: &EngineError) -> &'static str {
    match e {
        EngineError::Sql(s) => sql_state(s),
        EngineError::Catalog(c) => match c {
            CatalogError::AlreadyExists(_) => "42P07",
            CatalogError::NotFound(_) => "42P01",
            CatalogError::IndexNotFound(_) => "42704",
            CatalogError::SchemaExists(_) => "42P06",
            CatalogError::WrongKind { .. } => "42809",
            CatalogError::Corrupt(_) => "XX001",
        },
        EngineError::Store(s) => match s {
            StoreError::Corrupt(_) => "XX001",
            StoreError::DiskFull(_) => "53100",
            _ => "58030",
        },
        EngineError::DataFusion(d) => datafusion_state(d),
        EngineError::Auth(a) => auth_state(a),
        EngineError::Value { kind, .. } => match kind {
            CellErrorKind::InvalidText => "22P02",
            CellErrorKind::OutOfRange => "22003",
            CellErrorKind::TooLong => "22001",
            CellErrorKind::NotNull => "23502",
            CellErrorKind::Datatype => "42804",
            CellErrorKind::Encoding => "22021",
        },
        EngineError::UniqueViolation(_) => "23505",
        EngineError::CardinalityViolation(_) => "21000",
        EngineError::BadCopyData(_) => "22P04",
        EngineError::CharacterNotInRepertoire(_) => "22021",
        EngineError::Unsupported(_) => "0A000",
        EngineError::UndefinedObject(_) => "42704",
        EngineError::UndefinedColumn(_) => "42703",
        EngineError::WrongObjectType(_) => "42809",
        EngineError::SyntaxError(_) => "42601",
        EngineError::InvalidParameterValue(_) => "22023",
        EngineError::ProtocolViolation(_) => "08P01",
        EngineError::SerializationFailure(_) => "40001",
        EngineError::UndefinedCursor(_) => "34000",
        EngineError::UndefinedPreparedStatement(_) => "26000",
        EngineError::DuplicateObject(_) => "42P03",
        EngineError::Txn(crate::txn::TxnError::Aborted) => "25P02",
        EngineError::Txn(crate::txn::TxnError::NoSavepoint(_)) => "3B001",
        EngineError::Txn(crate::txn::TxnError::NoBlock(_)) => "25P01",
        EngineError::Txn(crate::txn::TxnError::InBlock(_)) => "25001",
        EngineError::Database(d) => {
            use crate::database::DatabaseError as D;
            match d {
                D::Undefined(_) => "3D000",
                D::Duplicate(_) => "42P04",
                D::InUse { .. } => "55006",
                D::Denied(_) => "42501",
                D::NotAccepting(_) => "55000",
                D::TooManyConnections(_) => "53300",
                D::Unsupported(_) => "0A000",
                D::Storage(_) => "58030",
            }
        }
        EngineError::DependentObjects(_) => "2BP01",
        EngineError::Connector(c) => match c {
            crate::connectors::ConnectorError::InvalidOption(_) => "22023",
            crate::connectors::ConnectorError::Unsupported(_) => "0A000",
            crate::connectors::ConnectorError::Unreachable(_) => "08001",
            crate::connectors::ConnectorError::Decode(_) => "22P02",
            crate::connectors::ConnectorError::NotConnected(_) => "42809",
        },
        EngineError::InvalidTableDefinition(_) => "42P16",
        EngineError::ShuttingDown => "57P01",
        EngineError::StatementTimeout => "57014",
        EngineError::StatementCanceled => "57014",
        EngineError::OutOfMemory(_) => "53200",
        EngineError::ViewFailed { cause, .. } => sqlstate(cause),
        EngineError::Internal(_) => "XX000",
    }
}

fn sql_state(s: &SqlError) -> &'static str {
    match s {
        SqlError::Syntax(_) => "42601",
        SqlError::Unsupported(_) => "0A000",
        SqlError::InvalidDefinition(_) => "42P16",
        SqlError::DuplicateColumn(_) => "42701",
        SqlError::UndefinedColumn(_) => "42703",
        SqlError::DatatypeMismatch(_) => "42804",
        SqlError::Cardinality(_) => "21000",
        SqlError::OutOfRange(_) => "22003",
        SqlError::TooComplex(_) => "54001",
        SqlError::LimitExceeded(_) => "54000",
        SqlError::InvalidGrant(_) => "0LP01",
        SqlError::InvalidEncoding(_) => "22021",
        SqlError::UndefinedSchema(_) | SqlError::NoSchema(_) => "3F000",
        SqlError::ReservedName(_) => "42939",
        SqlError::InvalidParameterValue(_) => "22023",
        SqlError::NullValueNotAllowed(_) => "22004",
        SqlError::InvalidText(_) => "22P02",
        SqlError::Untranslatable(_) => "22P05",
        SqlError::Plan(_) => "XX000",
    }
}

fn auth_state(a: &AuthError) -> &'static str {
    match a {
        AuthError::Corrupt(_) => "XX001",
        AuthError::Tls(_) => "08P01",
        AuthError::PermissionDenied(_) => "42501",
        AuthError::UndefinedRole(_) => "42704",
        AuthError::DuplicateRole(_) => "42710",
        AuthError::RoleInUse { .. } => "2BP01",
        AuthError::ObjectInUse(_) => "55006",
        AuthError::InvalidParameter(_) => "22023",
        AuthError::UndefinedSchema(_) => "3F000",
        AuthError::Unsupported(_) => "0A000",
    }
}

fn datafusion_state(e: &DataFusionError) -> &'static str {
    match e {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703",
            SchemaError::AmbiguousReference { .. } => "42702",
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
        },
        DataFusionError::Plan(m) => plan_state(m),
        DataFusionError::ArrowError(a, _) => arrow_state(a),
        DataFusionError::Execution(m) => {
            let l = m.to_ascii_lowercase();
            if l.contains("divide by zero") || l.contains("division by zero") {
                "22012"
            } else if l.contains("overflow") {
                "22003"
            } else if l.contains("subquery returned more than one row") {
                "21000"
            } else if l.contains("cast")
                || l.contains("parse")
                || l.contains("invalid input syntax")
            {
                "22P02"
            } else {
                "22000"
            }
        }
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::Context(_, inner) => datafusion_state(inner),
        DataFusionError::Diagnostic(_, inner) => datafusion_state(inner),
        DataFusionError::Shared(inner) => datafusion_state(inner),
        DataFusionError::Collection(v) => v.first().map(datafusion_state).unwrap_or("XX000"),
        DataFusionError::External(inner) => {
            if let Some(s) = inner.downcast_ref::<SqlError>() {
                sql_state(s)
            } else if let Some(e) = inner.downcast_ref::<EngineError>() {
                sqlstate(e)
            } else if let Some(d) = inner.downcast_ref::<DataFusionError>() {
                datafusion_state(d)
            } else {
                "XX000"
            }
        }
        _ => "XX000",
    }
}

fn plan_state(m: &str) -> &'static str {
    let l = m.to_ascii_lowercase();
    if l.contains("table '") && l.contains("not found") {
        "42P01"
    } else if l.contains("invalid function") || l.contains("no function matches") {
        "42883"
    } else if l.contains("cannot infer common")
        || l.contains("cannot coerce")
        || l.contains("does not support")
        || l.contains("type coercion")
    {
        "42804"
    } else if l.contains("unsupported")
        || l.contains("not supported")
        || l.contains("can only be used in")
    {
        // ("Correlated scalar subquery can only be used in Projection, …")
        "0A000"
    } else if l.contains("placeholder") {
        "42P18"
    } else {
        "42601"
    }
}

fn arrow_state(a: &ArrowError) -> &'static str {
    match a {
        ArrowError::DivideByZero => "22012",
        ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
        ArrowError::ArithmeticOverflow(_) => "22003",
        ArrowError::ComputeError(m) if m.to_ascii_lowercase().contains("overflow") => "22003",
        _ => "XX000",
    }
}

/// A message in Postgres' style: DataFusion's prefixes removed, missing
/// tables and columns phrased as Postgres phrases them.
pub fn message(e: &EngineError) -> String {
    match e {
        EngineError::DataFusion(d) => datafusion_message(d),
        EngineError::ViewFailed { view, cause } => format!(
            "materialized view \"{view}\" is in an error state (ALTER MATERIALIZED VIEW … RECOMPUTE rebuilds it, DROP removes it): {}",
            failure(cause)
        ),
        other => other.to_string(),
    }
}

/// Why a view failed; for a view that failed because a view it reads did,
/// that view and its reason.
fn failure(cause: &EngineError) -> String {
    match cause {
        EngineError::ViewFailed { view, cause } => format!(
            "it reads materialized view \"{view}\", which failed: {}",
            failure(cause)
        ),
        other => message(other),
    }
}

fn datafusion_message(e: &DataFusionError) -> String {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_message(inner)
        }
        DataFusionError::Shared(inner) => datafusion_message(inner),
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                format!("column \"{}\" does not exist", field.name())
            }
            other => other.to_string(),
        },
        DataFusionError::Plan(m) => {
            if let Some(name) = missing_table(m) {
                return format!("relation \"{name}\" does not exist");
            }
            m.clone()
        }
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::DivideByZero => "division by zero".into(),
            other => other.to_string(),
        },
        DataFusionError::Execution(m) if m.contains("subquery returned more than one row") => {
            crate::sql::subquery::TOO_MANY_ROWS.to_string()
        }
        DataFusionError::Execution(m) | DataFusionError::NotImplemented(m) => m.clone(),
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<EngineError>() {
                message(e)
            } else if let Some(d) = inner.downcast_ref::<DataFusionError>() {
                datafusion_message(d)
            } else {
                inner.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// `table 'freshet.public.x' not found` -> `x` (`freshet.s.x`: `s.x`)
fn missing_table(m: &str) -> Option<String> {
    let start = m.find("table '")? + "table '".len();
    let rest = &m[start..];
    let end = rest.find('\'')?;
    if !rest[end..].contains("not found") {
        return None;
    }
    // (a qualified name keeps a schema other than public)
    let name = &rest[..end];
    let name = name.strip_prefix("freshet.").unwrap_or(name);
    let name = ["public.", "__offsets."]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    Some(name.to_string())
}

pub fn error_info(e: &EngineError) -> ErrorInfo {
    let severity = match e {
        EngineError::ShuttingDown => "FATAL",
        _ => "ERROR",
    };
    let mut info = ErrorInfo::new(severity.to_string(), sqlstate(e).to_string(), message(e));
    match e {
        EngineError::Auth(AuthError::RoleInUse { detail, .. })
        | EngineError::Database(crate::database::DatabaseError::InUse { detail, .. })
            if !detail.is_empty() =>
        {
            info.detail = Some(detail.clone());
        }
        _ => {}
    }
    info
}

pub fn to_pgwire(e: &EngineError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tables_read_like_postgres() {
        let e = EngineError::DataFusion(DataFusionError::Plan(
            "table 'freshet.public.nope' not found".into(),
        ));
        assert_eq!(sqlstate(&e), "42P01");
        assert_eq!(message(&e), "relation \"nope\" does not exist");
    }

    #[test]
    fn values_map_to_data_exceptions() {
        let e = EngineError::Value {
            kind: CellErrorKind::InvalidText,
            message: "x".into(),
        };
        assert_eq!(sqlstate(&e), "22P02");
        assert_eq!(sqlstate(&EngineError::UniqueViolation("k".into())), "23505");
    }
}

//! SQL column types and their Arrow representation.

use std::collections::HashMap;
use std::fmt;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, CharacterLength, ExactNumberInfo, TimezoneInfo};
use serde::{Deserialize, Serialize};

/// Field metadata key naming the SQL type when the Arrow type alone is
/// ambiguous (jsonb is stored as Utf8).
pub const SQL_TYPE_KEY: &str = "freshet.sql_type";

/// The PostgreSQL type a column of this field shows as: the declared one
/// where the Arrow type alone is ambiguous (`jsonb`, `json`, `varchar` are
/// Utf8), else the Arrow type's.
pub fn pg_type_of(f: &Field) -> Option<pgwire::api::Type> {
    use pgwire::api::Type;
    if f.data_type() == &DataType::Utf8 {
        match f.metadata().get(SQL_TYPE_KEY).map(String::as_str) {
            Some("jsonb") => return Some(Type::JSONB),
            Some("json") => return Some(Type::JSON),
            Some("varchar") => return Some(Type::VARCHAR),
            _ => {}
        }
    }
    arrow_pg::datatypes::into_pg_type(f.data_type()).ok()
}

/// Precision and scale used for `NUMERIC` without arguments.
pub const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric { precision: u8, scale: i8 },
    Text,
    Varchar { max_len: Option<u32> },
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Interval,
    Jsonb,
}

#[derive(Debug, thiserror::Error)]
#[error("type {0} is not supported for columns")]
pub struct UnsupportedType(pub String);

impl SqlType {
    pub fn from_ast(dt: &ast::DataType) -> Result<SqlType, UnsupportedType> {
        use ast::DataType as D;
        let t = match dt {
            D::Bool | D::Boolean => SqlType::Bool,
            D::Int2(_) | D::SmallInt(_) => SqlType::Int2,
            D::Int(_) | D::Int4(_) | D::Integer(_) => SqlType::Int4,
            D::Int8(_) | D::BigInt(_) => SqlType::Int8,
            D::Float4 | D::Real => SqlType::Float4,
            D::Float8 | D::Double(_) | D::DoublePrecision => SqlType::Float8,
            D::Float(info) => match info {
                ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float4,
                _ => SqlType::Float8,
            },
            D::Numeric(info) | D::Decimal(info) => match info {
                ExactNumberInfo::None => SqlType::Numeric {
                    precision: DEFAULT_NUMERIC.0,
                    scale: DEFAULT_NUMERIC.1,
                },
                ExactNumberInfo::Precision(p) => SqlType::Numeric {
                    precision: numeric_precision(*p, dt)?,
                    scale: 0,
                },
                ExactNumberInfo::PrecisionAndScale(p, s) => {
                    let precision = numeric_precision(*p, dt)?;
                    if *s < 0 || *s > precision as i64 {
                        return Err(UnsupportedType(dt.to_string()));
                    }
                    SqlType::Numeric {
                        precision,
                        scale: *s as i8,
                    }
                }
            },
            D::Text | D::String(_) => SqlType::Text,
            D::Varchar(len) | D::CharacterVarying(len) => SqlType::Varchar {
                max_len: char_len(len.as_ref()),
            },
            // CHAR(n) is stored as text; blank padding is not applied.
            D::Char(_) | D::Character(_) => SqlType::Text,
            D::Bytea => SqlType::Bytea,
            D::Date => SqlType::Date,
            D::Timestamp(_, tz) => match tz {
                TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => SqlType::Timestamptz,
                _ => SqlType::Timestamp,
            },
            D::Interval { .. } => SqlType::Interval,
            D::JSON | D::JSONB => SqlType::Jsonb,
            D::Custom(name, _) => {
                let n = name.to_string().to_ascii_lowercase();
                match n.trim_start_matches("pg_catalog.") {
                    "timestamptz" => SqlType::Timestamptz,
                    "int2" => SqlType::Int2,
                    "int4" => SqlType::Int4,
                    "int8" => SqlType::Int8,
                    "float4" => SqlType::Float4,
                    "float8" => SqlType::Float8,
                    "bool" => SqlType::Bool,
                    "jsonb" | "json" => SqlType::Jsonb,
                    _ => return Err(UnsupportedType(dt.to_string())),
                }
            }
            other => return Err(UnsupportedType(other.to_string())),
        };
        Ok(t)
    }

    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Text | SqlType::Varchar { .. } | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        }
    }

    /// The Arrow field for a column of this type.
    pub fn field(&self, name: &str, nullable: bool) -> Field {
        let f = Field::new(name, self.to_arrow(), nullable);
        match self {
            SqlType::Jsonb => f.with_metadata(HashMap::from([(
                SQL_TYPE_KEY.to_string(),
                "jsonb".to_string(),
            )])),
            // reported as varchar (not text) wherever the column is read
            SqlType::Varchar { .. } => f.with_metadata(HashMap::from([(
                SQL_TYPE_KEY.to_string(),
                "varchar".to_string(),
            )])),
            _ => f,
        }
    }

    /// Whether values of this type can be compared for equality in a key.
    pub fn keyable(&self) -> bool {
        !matches!(self, SqlType::Float4 | SqlType::Float8)
    }
}

fn numeric_precision(p: u64, dt: &ast::DataType) -> Result<u8, UnsupportedType> {
    if (1..=38).contains(&p) {
        Ok(p as u8)
    } else {
        Err(UnsupportedType(format!(
            "{dt} (NUMERIC precision must be between 1 and 38)"
        )))
    }
}

fn char_len(len: Option<&CharacterLength>) -> Option<u32> {
    match len {
        Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length).ok(),
        _ => None,
    }
}

impl fmt::Display for SqlType {
    /// The name Postgres prints for the type (`format_type`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Bool => write!(f, "boolean"),
            SqlType::Int2 => write!(f, "smallint"),
            SqlType::Int4 => write!(f, "integer"),
            SqlType::Int8 => write!(f, "bigint"),
            SqlType::Float4 => write!(f, "real"),
            SqlType::Float8 => write!(f, "double precision"),
            SqlType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            SqlType::Text => write!(f, "text"),
            SqlType::Varchar { max_len: Some(n) } => write!(f, "character varying({n})"),
            SqlType::Varchar { max_len: None } => write!(f, "character varying"),
            SqlType::Bytea => write!(f, "bytea"),
            SqlType::Date => write!(f, "date"),
            SqlType::Timestamp => write!(f, "timestamp without time zone"),
            SqlType::Timestamptz => write!(f, "timestamp with time zone"),
            SqlType::Interval => write!(f, "interval"),
            SqlType::Jsonb => write!(f, "jsonb"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(t: &str) -> SqlType {
        let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(t).unwrap();
        SqlType::from_ast(&p.parse_data_type().unwrap()).unwrap()
    }

    #[test]
    fn postgres_spellings() {
        assert_eq!(parse("BIGINT"), SqlType::Int8);
        assert_eq!(parse("int"), SqlType::Int4);
        assert_eq!(parse("double precision"), SqlType::Float8);
        assert_eq!(
            parse("numeric(10,2)"),
            SqlType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(parse("timestamp with time zone"), SqlType::Timestamptz);
        assert_eq!(parse("timestamptz"), SqlType::Timestamptz);
        assert_eq!(parse("TIMESTAMP"), SqlType::Timestamp);
        assert_eq!(parse("varchar(20)"), SqlType::Varchar { max_len: Some(20) });
        assert_eq!(parse("jsonb"), SqlType::Jsonb);
    }
}

//! INSERT, UPDATE, DELETE and COPY FROM: from a statement to rows of the
//! relation's types, then to the committer as one atomic op.
//!
//! Every value is converted into its column's type before anything is sent
//! to the committer, so a bad value fails the whole statement with its row
//! and column named, and nothing of it is stored.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, ConflictTarget, CopyLegacyCsvOption, CopyLegacyOption, CopyOption,
    CopySource, CopyTarget, Expr, FromTable, OnConflictAction, OnInsert, SetExpr, TableFactor,
    TableObject, Value,
};
use futures::StreamExt;

use super::commit::{OnConflict, Op, Outcome};
use super::error::{EngineError, Result};
use super::returning::Returning;
use super::session::{bind, param_types, Output, Session};
use super::Engine;
use crate::auth::Privilege;
use crate::catalog::{ColumnDef, RelationDef, RelationKind, OFFSET_COLUMN};
use crate::ingest::coerce::{self, CellError};
use crate::ingest::copy::{CopyDecoder, CopyFormat, CopyFormatKind};
use crate::sql::parser::{normalize_ident, object_name};
use crate::store::{entry, EntryKind};

/// A planned write.
pub enum WritePlan {
    Insert(InsertPlan),
    /// `select` yields `_offset` then every column's new value.
    Update {
        rel: Arc<RelationDef>,
        select: LogicalPlan,
        returning: Option<Returning>,
    },
    /// `select` yields the `_offset` of every row to delete (then, with
    /// RETURNING, every column).
    Delete {
        rel: Arc<RelationDef>,
        select: LogicalPlan,
        returning: Option<Returning>,
    },
    CopyFrom {
        rel: Arc<RelationDef>,
        positions: Vec<usize>,
        format: CopyFormat,
    },
}

pub struct InsertPlan {
    rel: Arc<RelationDef>,
    /// Relation column filled by each provided value.
    positions: Vec<usize>,
    source: InsertSource,
    on_conflict: OnConflict,
    params: Vec<Option<DataType>>,
    returning: Option<Returning>,
}

enum InsertSource {
    /// `VALUES` rows, converted cell by cell without planning.
    Values(Vec<Vec<Expr>>),
    /// Literal `VALUES` rows read as text columns (`sql::values`).
    Literals {
        values: Vec<datafusion::arrow::array::StringArray>,
        rows: usize,
    },
    Query(LogicalPlan),
}

impl WritePlan {
    pub fn param_types(&self) -> Vec<Option<DataType>> {
        match self {
            WritePlan::Insert(i) => i.params.clone(),
            WritePlan::Update { select, .. } | WritePlan::Delete { select, .. } => {
                param_types(select).unwrap_or_default()
            }
            WritePlan::CopyFrom { .. } => vec![],
        }
    }

    pub fn output_schema(&self) -> Option<SchemaRef> {
        self.returning().map(|r| r.schema.clone())
    }

    fn returning(&self) -> Option<&Returning> {
        match self {
            WritePlan::Insert(i) => i.returning.as_ref(),
            WritePlan::Update { returning, .. } | WritePlan::Delete { returning, .. } => {
                returning.as_ref()
            }
            WritePlan::CopyFrom { .. } => None,
        }
    }

    /// The relation written, the privileges the write needs on it, and
    /// the plan whose relations it reads (for UPDATE and DELETE that plan
    /// scans the target too).
    pub fn access(&self) -> (&Arc<RelationDef>, Vec<Privilege>, Option<&LogicalPlan>) {
        let (rel, mut privileges, reads) = self.writes();
        // RETURNING reads the rows written
        if self.returning().is_some() {
            privileges.push(Privilege::Select);
        }
        (rel, privileges, reads)
    }

    fn writes(&self) -> (&Arc<RelationDef>, Vec<Privilege>, Option<&LogicalPlan>) {
        match self {
            WritePlan::Insert(i) => {
                let mut p = vec![Privilege::Insert];
                if matches!(i.on_conflict, OnConflict::Update(_)) {
                    p.push(Privilege::Update);
                }
                let reads = match &i.source {
                    InsertSource::Query(q) => Some(q),
                    _ => None,
                };
                (&i.rel, p, reads)
            }
            WritePlan::Update { rel, select, .. } => (rel, vec![Privilege::Update], Some(select)),
            WritePlan::Delete { rel, select, .. } => (rel, vec![Privilege::Delete], Some(select)),
            WritePlan::CopyFrom { rel, .. } => (rel, vec![Privilege::Insert], None),
        }
    }
}

/// A source or table to write to (views are written only by the engine).
fn relation(engine: &Engine, name: &ast::ObjectName) -> Result<Arc<RelationDef>> {
    let n = object_name(name)?;
    let rel = engine
        .relation(&n)
        .ok_or_else(|| EngineError::from(crate::catalog::CatalogError::NotFound(n)))?;
    if !rel.is_base() {
        return Err(not_writable(&rel));
    }
    Ok(rel)
}

fn unsupported(what: &str) -> EngineError {
    EngineError::Unsupported(format!("{what} is not supported"))
}

fn column_position(rel: &RelationDef, id: &ast::Ident) -> Result<usize> {
    column_index(rel, normalize_ident(id))
}

fn column_index(rel: &RelationDef, name: String) -> Result<usize> {
    if name == OFFSET_COLUMN {
        return Err(EngineError::UndefinedColumn(format!(
            "cannot assign to system column \"{OFFSET_COLUMN}\""
        )));
    }
    rel.column_index(&name).ok_or_else(|| {
        EngineError::UndefinedColumn(format!(
            "column \"{name}\" of relation \"{}\" does not exist",
            rel.name
        ))
    })
}

fn last_ident(name: &ast::ObjectName) -> Result<&ast::Ident> {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .ok_or_else(|| EngineError::SyntaxError(format!("invalid column name {name}")))
}

fn quote(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

/// Plans a write statement.
/// Plans an INSERT of literal rows (`sql::values`): the same checks as the
/// general path, without a syntax tree.
pub fn plan_literals(
    session: &Session,
    lit: &crate::sql::values::LiteralInsert,
) -> Result<WritePlan> {
    let engine = session.engine();
    let rel = engine.relation(&lit.table).ok_or_else(|| {
        EngineError::from(crate::catalog::CatalogError::NotFound(lit.table.clone()))
    })?;
    if !rel.is_base() {
        return Err(not_writable(&rel));
    }
    let positions: Vec<usize> = if lit.columns.is_empty() {
        (0..rel.columns.len()).collect()
    } else {
        let mut p = Vec::with_capacity(lit.columns.len());
        for c in &lit.columns {
            let i = column_index(&rel, c.clone())?;
            if p.contains(&i) {
                return Err(EngineError::Sql(crate::sql::SqlError::DuplicateColumn(
                    format!(
                        "column \"{}\" specified more than once",
                        rel.columns[i].name
                    ),
                )));
            }
            p.push(i);
        }
        p
    };
    if lit.values.len() != positions.len() {
        return Err(EngineError::SyntaxError(
            if lit.values.len() > positions.len() {
                "INSERT has more expressions than target columns".into()
            } else {
                "INSERT has more target columns than expressions".into()
            },
        ));
    }
    Ok(WritePlan::Insert(InsertPlan {
        rel,
        positions,
        source: InsertSource::Literals {
            values: lit.values.clone(),
            rows: lit.rows,
        },
        on_conflict: OnConflict::Error,
        params: vec![],
        returning: None,
    }))
}

pub async fn plan(session: &Session, stmt: &ast::Statement) -> Result<WritePlan> {
    let engine = session.engine();
    match stmt {
        ast::Statement::Insert(ins) => {
            // other dialects' INSERT forms (sqlparser reads them all)
            if let Some(word) = [
                (ins.or.is_some(), "OR"),
                (ins.ignore, "IGNORE"),
                (ins.replace_into, "REPLACE"),
                (ins.overwrite, "OVERWRITE"),
                (ins.priority.is_some(), "priority"),
                (!ins.into, "table name"),
            ]
            .iter()
            .find_map(|(bad, word)| bad.then_some(word))
            {
                return Err(EngineError::SyntaxError(format!(
                    "syntax error at or near \"{word}\" (not a PostgreSQL INSERT)"
                )));
            }
            let TableObject::TableName(name) = &ins.table else {
                return Err(unsupported("INSERT INTO a table function"));
            };
            let rel = relation(engine, name)?;
            let returning = match &ins.returning {
                Some(items) => Some(
                    Returning::plan(
                        session,
                        &rel,
                        ins.table_alias.as_ref().map(|a| &a.alias),
                        items,
                    )
                    .await?,
                ),
                None => None,
            };
            let positions: Vec<usize> = if ins.columns.is_empty() {
                (0..rel.columns.len()).collect()
            } else {
                let mut p = Vec::with_capacity(ins.columns.len());
                for c in &ins.columns {
                    let i = column_position(&rel, last_ident(c)?)?;
                    if p.contains(&i) {
                        return Err(EngineError::Sql(crate::sql::SqlError::DuplicateColumn(
                            format!(
                                "column \"{}\" specified more than once",
                                rel.columns[i].name
                            ),
                        )));
                    }
                    p.push(i);
                }
                p
            };
            let on_conflict = match &ins.on {
                None => OnConflict::Error,
                Some(OnInsert::OnConflict(c)) => {
                    if rel.kind != RelationKind::Table || rel.primary_key.is_empty() {
                        return Err(EngineError::InvalidParameterValue(format!(
                            "there is no unique or exclusion constraint matching the ON CONFLICT specification (\"{}\" has no primary key)",
                            rel.name
                        )));
                    }
                    if let Some(ConflictTarget::Columns(cols)) = &c.conflict_target {
                        let mut idx: Vec<usize> = cols
                            .iter()
                            .map(|c| column_position(&rel, c))
                            .collect::<Result<_>>()?;
                        idx.sort_unstable();
                        let mut pk = rel.primary_key.clone();
                        pk.sort_unstable();
                        if idx != pk {
                            return Err(EngineError::InvalidParameterValue(
                                "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                            ));
                        }
                    }
                    match &c.action {
                        OnConflictAction::DoNothing => OnConflict::DoNothing,
                        OnConflictAction::DoUpdate(u) => {
                            if u.selection.is_some() {
                                return Err(unsupported("ON CONFLICT DO UPDATE ... WHERE"));
                            }
                            let mut cols = Vec::new();
                            for a in &u.assignments {
                                let AssignmentTarget::ColumnName(target) = &a.target else {
                                    return Err(unsupported(
                                        "ON CONFLICT DO UPDATE with a tuple target",
                                    ));
                                };
                                let i = column_position(&rel, last_ident(target)?)?;
                                let ok = match &a.value {
                                    Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                                        normalize_ident(&ids[0]) == "excluded"
                                            && normalize_ident(&ids[1]) == rel.columns[i].name
                                    }
                                    _ => false,
                                };
                                if !ok {
                                    return Err(EngineError::Unsupported(format!(
                                        "ON CONFLICT DO UPDATE supports only SET col = EXCLUDED.col; found {a}"
                                    )));
                                }
                                if !positions.contains(&i) {
                                    return Err(EngineError::Unsupported(format!(
                                        "ON CONFLICT DO UPDATE of column \"{}\", which the INSERT does not provide",
                                        rel.columns[i].name
                                    )));
                                }
                                cols.push(i);
                            }
                            OnConflict::Update(cols)
                        }
                    }
                }
                Some(other) => return Err(EngineError::Unsupported(format!("{other}"))),
            };
            let Some(source) = &ins.source else {
                return Err(unsupported("INSERT without VALUES or a query"));
            };
            let values = match source.body.as_ref() {
                SetExpr::Values(v)
                    if source.with.is_none()
                        && source.order_by.is_none()
                        && source.limit_clause.is_none() =>
                {
                    Some(v.rows.iter().map(|r| r.content.clone()).collect::<Vec<_>>())
                }
                _ => None,
            };
            let (source, params) = match values {
                Some(rows) => {
                    let mut params: Vec<Option<DataType>> = Vec::new();
                    for row in &rows {
                        if row.len() != positions.len() {
                            return Err(EngineError::SyntaxError(if row.len() > positions.len() {
                                "INSERT has more expressions than target columns".into()
                            } else {
                                "INSERT has more target columns than expressions".into()
                            }));
                        }
                        for (k, cell) in row.iter().enumerate() {
                            if let Some(n) = placeholder(cell) {
                                if params.len() < n {
                                    params.resize(n, None);
                                }
                                params[n - 1] = Some(rel.columns[positions[k]].ty.to_arrow());
                            } else if nested_placeholder(cell) {
                                // typed as the expression's planning types it
                                let plan =
                                    plan_internal(session, &format!("SELECT {cell}")).await?;
                                for (i, t) in param_types(&plan)?.into_iter().enumerate() {
                                    if params.len() <= i {
                                        params.resize(i + 1, None);
                                    }
                                    if params[i].is_none() {
                                        params[i] = t;
                                    }
                                }
                            }
                        }
                    }
                    (InsertSource::Values(rows), params)
                }
                None => {
                    let plan = session
                        .plan_query(&ast::Statement::Query(source.clone()))
                        .await?;
                    let n = plan.schema().fields().len();
                    if n != positions.len() {
                        return Err(EngineError::SyntaxError(if n > positions.len() {
                            "INSERT has more expressions than target columns".into()
                        } else {
                            "INSERT has more target columns than expressions".into()
                        }));
                    }
                    let params = param_types(&plan)?;
                    (InsertSource::Query(plan), params)
                }
            };
            Ok(WritePlan::Insert(InsertPlan {
                rel,
                positions,
                source,
                on_conflict,
                params,
                returning,
            }))
        }
        ast::Statement::Update(u) => {
            if u.from.is_some() || !u.table.joins.is_empty() {
                return Err(unsupported("UPDATE ... FROM"));
            }
            if u.limit.is_some() || !u.order_by.is_empty() {
                return Err(unsupported("UPDATE ... ORDER BY / LIMIT"));
            }
            let TableFactor::Table { name, alias, .. } = &u.table.relation else {
                return Err(unsupported("UPDATE of this target"));
            };
            let rel = mutable_table(engine, name, "update")?;
            let mut exprs: Vec<Option<String>> = vec![None; rel.columns.len()];
            for a in &u.assignments {
                let AssignmentTarget::ColumnName(target) = &a.target else {
                    return Err(unsupported("UPDATE with a tuple assignment"));
                };
                let i = column_position(&rel, last_ident(target)?)?;
                if exprs[i].is_some() {
                    return Err(EngineError::SyntaxError(format!(
                        "multiple assignments to same column \"{}\"",
                        rel.columns[i].name
                    )));
                }
                exprs[i] = Some(a.value.to_string());
            }
            let projection: Vec<String> = std::iter::once(quote(OFFSET_COLUMN))
                .chain(rel.columns.iter().zip(&exprs).map(|(c, e)| match e {
                    Some(e) => format!("{e} AS {}", quote(&c.name)),
                    None => quote(&c.name),
                }))
                .collect();
            let sql = select_sql(
                &rel,
                alias.as_ref().map(|a| &a.name),
                &projection,
                u.selection.as_ref(),
            );
            let select = plan_internal(session, &sql).await?;
            let returning = match &u.returning {
                Some(items) => Some(
                    Returning::plan(session, &rel, alias.as_ref().map(|a| &a.name), items).await?,
                ),
                None => None,
            };
            Ok(WritePlan::Update {
                rel,
                select,
                returning,
            })
        }
        ast::Statement::Delete(d) => {
            if d.using.is_some() || !d.tables.is_empty() {
                return Err(unsupported("DELETE ... USING"));
            }
            if d.limit.is_some() || !d.order_by.is_empty() {
                return Err(unsupported("DELETE ... ORDER BY / LIMIT"));
            }
            let from = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let [twj] = from.as_slice() else {
                return Err(unsupported("DELETE from several tables"));
            };
            if !twj.joins.is_empty() {
                return Err(unsupported("DELETE with a join"));
            }
            let TableFactor::Table { name, alias, .. } = &twj.relation else {
                return Err(unsupported("DELETE of this target"));
            };
            let rel = mutable_table(engine, name, "delete from")?;
            let returning = match &d.returning {
                Some(items) => Some(
                    Returning::plan(session, &rel, alias.as_ref().map(|a| &a.name), items).await?,
                ),
                None => None,
            };
            // with RETURNING, the deleted rows too
            let columns: Vec<String> = std::iter::once(quote(OFFSET_COLUMN))
                .chain(
                    rel.columns
                        .iter()
                        .map(|c| quote(&c.name))
                        .filter(|_| returning.is_some()),
                )
                .collect();
            let sql = select_sql(
                &rel,
                alias.as_ref().map(|a| &a.name),
                &columns,
                d.selection.as_ref(),
            );
            let select = plan_internal(session, &sql).await?;
            Ok(WritePlan::Delete {
                rel,
                select,
                returning,
            })
        }
        ast::Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => {
            if *to {
                return Err(unsupported("COPY ... TO"));
            }
            match target {
                CopyTarget::Stdin => {}
                _ => {
                    return Err(EngineError::Unsupported(
                        "COPY FROM a file or program on the server is not supported; use COPY ... FROM STDIN (psql: \\copy)".into(),
                    ))
                }
            }
            let CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(unsupported("COPY (query) FROM"));
            };
            let rel = relation(engine, table_name)?;
            let positions = if columns.is_empty() {
                (0..rel.columns.len()).collect()
            } else {
                columns
                    .iter()
                    .map(|c| column_position(&rel, c))
                    .collect::<Result<Vec<_>>>()?
            };
            let format = copy_format(options, legacy_options)?;
            Ok(WritePlan::CopyFrom {
                rel,
                positions,
                format,
            })
        }
        _ => Err(EngineError::Internal("not a write statement".into())),
    }
}

fn mutable_table(engine: &Engine, name: &ast::ObjectName, verb: &str) -> Result<Arc<RelationDef>> {
    let rel = relation(engine, name)?;
    if rel.kind == RelationKind::Source {
        return Err(EngineError::WrongObjectType(format!(
            "cannot {verb} source \"{}\": sources are append-only",
            rel.name
        )));
    }
    Ok(rel)
}

fn select_sql(
    rel: &RelationDef,
    alias: Option<&ast::Ident>,
    projection: &[String],
    selection: Option<&Expr>,
) -> String {
    let alias = match alias {
        Some(a) => a.to_string(),
        // (an unaliased `s.t` is referred to as `t`)
        None => quote(crate::sql::names::split(&rel.name).1),
    };
    let mut sql = format!(
        "SELECT {} FROM {}.{} AS {alias}",
        projection.join(", "),
        quote(crate::sql::rewrite::OFFSETS_SCHEMA),
        quote(&rel.name)
    );
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    sql
}

/// Plans SQL that Freshet generated (already referring to `__offsets`).
async fn plan_internal(session: &Session, sql: &str) -> Result<LogicalPlan> {
    let mut stmts =
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&crate::sql::dialect::Postgres, sql)
            .map_err(|e| EngineError::SyntaxError(e.to_string()))?;
    let stmt = stmts
        .pop()
        .ok_or_else(|| EngineError::Internal("empty generated statement".into()))?;
    let stmt = session.parser().rewrite(stmt);
    Ok(session
        .statement_state()
        .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
        .await?)
}

/// `COPY table [(columns)] | (query) TO STDOUT [WITH (…)]`: the query
/// whose rows are written out, and their format.
pub fn copy_out_query(stmt: &ast::Statement) -> Result<Option<(ast::Query, CopyFormat)>> {
    let ast::Statement::Copy {
        source,
        to: true,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Ok(None);
    };
    if !matches!(target, CopyTarget::Stdout) {
        return Err(EngineError::Unsupported(
            "COPY TO a file or program on the server is not supported; use COPY ... TO STDOUT (psql: \\copy)".into(),
        ));
    }
    let format = copy_format(options, legacy_options)?;
    let query = match source {
        CopySource::Query(q) => (**q).clone(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let sql = format!("SELECT {cols} FROM {table_name}");
            let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
            let mut parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &sql)
                .map_err(|e| EngineError::SyntaxError(e.to_string()))?;
            match parsed.pop() {
                Some(ast::Statement::Query(q)) => *q,
                _ => return Err(EngineError::Internal("COPY TO: no query".into())),
            }
        }
    };
    Ok(Some((query, format)))
}

fn copy_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
    let mut kind = CopyFormatKind::Text;
    for o in options {
        if let CopyOption::Format(f) = o {
            kind = match f.value.to_ascii_lowercase().as_str() {
                "text" => CopyFormatKind::Text,
                "csv" => CopyFormatKind::Csv,
                "binary" => CopyFormatKind::Binary,
                other => {
                    return Err(EngineError::InvalidParameterValue(format!(
                        "COPY format \"{other}\" not recognized"
                    )))
                }
            };
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Csv(_) => kind = CopyFormatKind::Csv,
            CopyLegacyOption::Binary => kind = CopyFormatKind::Binary,
            _ => {}
        }
    }
    let mut f = match kind {
        CopyFormatKind::Text => CopyFormat::text(),
        CopyFormatKind::Csv => CopyFormat::csv(),
        CopyFormatKind::Binary => CopyFormat::binary(),
    };
    let textual = options.iter().any(|o| {
        !matches!(
            o,
            CopyOption::Format(_) | CopyOption::Freeze(_) | CopyOption::Encoding(_)
        )
    }) || legacy
        .iter()
        .any(|o| !matches!(o, CopyLegacyOption::Binary));
    if kind == CopyFormatKind::Binary && textual {
        return Err(EngineError::SyntaxError(
            "cannot specify DELIMITER, NULL, HEADER, QUOTE or ESCAPE in BINARY mode".into(),
        ));
    }
    let byte = |c: char, what: &str| -> Result<u8> {
        if c.is_ascii() {
            Ok(c as u8)
        } else {
            Err(EngineError::InvalidParameterValue(format!(
                "COPY {what} must be a single one-byte character"
            )))
        }
    };
    for o in options {
        match o {
            CopyOption::Format(_) | CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
            CopyOption::Delimiter(c) => f.delimiter = byte(*c, "delimiter")?,
            CopyOption::Null(s) => f.null = s.clone(),
            CopyOption::Header(h) => f.header = *h,
            CopyOption::Quote(c) => f.quote = byte(*c, "quote")?,
            CopyOption::Escape(c) => f.escape = byte(*c, "escape")?,
            other => return Err(EngineError::Unsupported(format!("COPY option {other}"))),
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Delimiter(c) => f.delimiter = byte(*c, "delimiter")?,
            CopyLegacyOption::Null(s) => f.null = s.clone(),
            CopyLegacyOption::Header => f.header = true,
            CopyLegacyOption::Csv(opts) => {
                for co in opts {
                    match co {
                        CopyLegacyCsvOption::Header => f.header = true,
                        CopyLegacyCsvOption::Quote(c) => f.quote = byte(*c, "quote")?,
                        CopyLegacyCsvOption::Escape(c) => f.escape = byte(*c, "escape")?,
                        other => {
                            return Err(EngineError::Unsupported(format!("COPY option {other}")))
                        }
                    }
                }
            }
            other => return Err(EngineError::Unsupported(format!("COPY option {other}"))),
        }
    }
    if f.kind == CopyFormatKind::Text && f.header {
        // Postgres allows HEADER only with CSV before v15; accept it for text too.
    }
    Ok(f)
}

/// `$n` if the expression is exactly a placeholder.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.trim_start_matches('$').parse().ok().filter(|n| *n >= 1),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `e` holds a parameter without being one.
fn nested_placeholder(e: &Expr) -> bool {
    placeholder(e).is_none()
        && ast::visit_expressions(e, |x| {
            if placeholder(x).is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .is_break()
}

/// A VALUES cell: text to parse with the column's input rules, or a value
/// that already has a type.
enum Cell {
    Text(Option<String>),
    Value(ScalarValue),
}

fn literal_text(e: &Expr) -> Option<Option<String>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Some(n.to_string())),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::TripleSingleQuotedString(s) => Some(Some(s.clone())),
            Value::DollarQuotedString(d) => Some(Some(d.value.clone())),
            Value::Boolean(b) => Some(Some(b.to_string())),
            Value::Null => Some(None),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(Some(format!("-{n}"))),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(inner) => literal_text(inner),
        _ => None,
    }
}

/// Evaluates a non-literal VALUES cell with DataFusion.
async fn eval_cell(session: &Session, e: &Expr, params: &[ScalarValue]) -> Result<ScalarValue> {
    let plan = plan_internal(session, &format!("SELECT {e}")).await?;
    let plan = bind(&plan, params)?;
    let state = session.statement_state();
    let physical = state.create_physical_plan(&plan).await?;
    let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| EngineError::Internal("expression produced no row".into()))?;
    Ok(ScalarValue::try_from_array(b.column(0), 0)?)
}

fn cell_error(
    e: CellError,
    rel: &RelationDef,
    col: &ColumnDef,
    row_base: usize,
    what: &str,
) -> EngineError {
    EngineError::Value {
        kind: e.kind,
        message: format!(
            "{} ({what} {}, column \"{}\" of relation \"{}\")",
            e.message,
            row_base + e.row + 1,
            col.name,
            rel.name
        ),
    }
}

/// Builds a full relation batch from the provided columns (in `positions`
/// order); missing columns are NULL.
fn assemble(
    rel: &RelationDef,
    positions: &[usize],
    provided: Vec<ArrayRef>,
    rows: usize,
    row_base: usize,
    what: &str,
) -> Result<RecordBatch> {
    let mut cols: Vec<Option<ArrayRef>> = vec![None; rel.columns.len()];
    for (arr, &p) in provided.into_iter().zip(positions) {
        let col = &rel.columns[p];
        let typed =
            coerce::to_column(&arr, col).map_err(|e| cell_error(e, rel, col, row_base, what))?;
        cols[p] = Some(typed);
    }
    let mut out = Vec::with_capacity(cols.len());
    for (i, c) in cols.into_iter().enumerate() {
        let col = &rel.columns[i];
        match c {
            Some(a) => out.push(a),
            None if col.nullable || rows == 0 => out.push(new_null_array(&col.ty.to_arrow(), rows)),
            None => {
                return Err(EngineError::Value {
                    kind: coerce::CellErrorKind::NotNull,
                    message: format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint ({what} {})",
                        col.name,
                        rel.name,
                        row_base + 1
                    ),
                })
            }
        }
    }
    Ok(RecordBatch::try_new(rel.schema(), out)?)
}

async fn values_batch(
    session: &Session,
    plan: &InsertPlan,
    rows: &[Vec<Expr>],
    params: &[ScalarValue],
) -> Result<RecordBatch> {
    let rel = &plan.rel;
    let mut provided = Vec::with_capacity(plan.positions.len());
    for (k, &p) in plan.positions.iter().enumerate() {
        let col = &rel.columns[p];
        let mut cells = Vec::with_capacity(rows.len());
        for row in rows {
            let e = &row[k];
            let cell = if let Some(t) = literal_text(e) {
                Cell::Text(t)
            } else if let Some(n) = placeholder(e) {
                let v = params.get(n - 1).cloned().ok_or_else(|| {
                    EngineError::ProtocolViolation(format!("no value bound for parameter ${n}"))
                })?;
                match v {
                    ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
                        Cell::Text(s)
                    }
                    other => Cell::Value(other),
                }
            } else if matches!(e, Expr::Identifier(id) if id.value.eq_ignore_ascii_case("default"))
            {
                Cell::Text(None)
            } else {
                Cell::Value(eval_cell(session, e, params).await?)
            };
            cells.push(cell);
        }
        let arr: ArrayRef = if cells.iter().all(|c| matches!(c, Cell::Text(_))) {
            let texts: StringArray = cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.as_deref(),
                    Cell::Value(_) => None,
                })
                .collect();
            Arc::new(texts)
        } else {
            // Mixed cells: convert one by one, then concatenate.
            let mut parts = Vec::with_capacity(cells.len());
            for (i, c) in cells.iter().enumerate() {
                let a: ArrayRef = match c {
                    Cell::Text(t) => Arc::new(StringArray::from(vec![t.clone()])),
                    Cell::Value(v) => v.to_array()?,
                };
                let typed =
                    coerce::to_column(&a, col).map_err(|e| cell_error(e, rel, col, i, "row"))?;
                parts.push(typed);
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            concat(&refs)?
        };
        provided.push(arr);
    }
    assemble(rel, &plan.positions, provided, rows.len(), 0, "row")
}

/// Runs a planned write.
pub async fn execute(
    session: &Session,
    plan: &WritePlan,
    params: &[ScalarValue],
) -> Result<Output> {
    let engine = session.engine().clone();
    match plan {
        WritePlan::Insert(ins) => {
            let lock = match ins.on_conflict {
                OnConflict::Error => None,
                _ => Some(engine.table_lock(ins.rel.id)),
            };
            let _guard = match &lock {
                Some(l) => Some(l.lock().await),
                None => None,
            };
            let batches = match &ins.source {
                InsertSource::Values(rows) => vec![values_batch(session, ins, rows, params).await?],
                InsertSource::Literals { values, rows } => {
                    let provided = values
                        .iter()
                        .map(|a| Arc::new(a.clone()) as ArrayRef)
                        .collect();
                    let assembled =
                        || assemble(&ins.rel, &ins.positions, provided, *rows, 0, "row");
                    vec![if *rows > 10_000 {
                        super::exec::heavy(assembled)?
                    } else {
                        assembled()?
                    }]
                }
                InsertSource::Query(q) => {
                    let q = bind(q, params)?;
                    let state = session.statement_state();
                    let physical = state.create_physical_plan(&q).await?;
                    let mut stream = execute_stream(physical, state.task_ctx())?;
                    let mut out = Vec::new();
                    let mut base = 0;
                    while let Some(b) = stream.next().await {
                        let b = b?;
                        let n = b.num_rows();
                        if n == 0 {
                            continue;
                        }
                        out.push(assemble(
                            &ins.rel,
                            &ins.positions,
                            b.columns().to_vec(),
                            n,
                            base,
                            "row",
                        )?);
                        base += n;
                    }
                    out
                }
            };
            let (outcome, returned) = match ins.on_conflict {
                OnConflict::Error => {
                    // every row is inserted (or none)
                    let returned = match &ins.returning {
                        Some(r) => Some(r.evaluate(session, batches.clone(), params).await?),
                        None => None,
                    };
                    let outcome = match append_op(&ins.rel, batches)? {
                        Some(op) => session.write(op).await?,
                        None => Outcome::default(),
                    };
                    (outcome, returned)
                }
                ref c => {
                    let schema = ins.rel.schema();
                    let all = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
                    let op = Op::Change {
                        rel: ins.rel.id,
                        retract: vec![],
                        insert: Some(all),
                        on_conflict: c.clone(),
                    };
                    match &ins.returning {
                        Some(r) => write_staged(session, op, r, params).await?,
                        None => (session.write(op).await?, None),
                    }
                }
            };
            Ok(done(
                "INSERT",
                outcome.inserted,
                ins.returning.as_ref().zip(returned),
            ))
        }
        WritePlan::Update {
            rel,
            select,
            returning,
        } => {
            let lock = engine.table_lock(rel.id);
            let _guard = lock.lock().await;
            let batches = run_select(session, select, params).await?;
            let mut offsets = Vec::new();
            let mut news = Vec::new();
            let positions: Vec<usize> = (0..rel.columns.len()).collect();
            let mut base = 0;
            for b in batches {
                let n = b.num_rows();
                offsets.extend(
                    b.column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .map(|o| *o as u64),
                );
                news.push(assemble(
                    rel,
                    &positions,
                    b.columns()[1..].to_vec(),
                    n,
                    base,
                    "updated row",
                )?);
                base += n;
            }
            let returned = match returning {
                Some(r) => Some(r.evaluate(session, news.clone(), params).await?),
                None => None,
            };
            if offsets.is_empty() {
                return Ok(done("UPDATE", 0, returning.as_ref().zip(returned)));
            }
            let insert = datafusion::arrow::compute::concat_batches(&rel.schema(), &news)?;
            let o = session
                .write(Op::Change {
                    rel: rel.id,
                    retract: offsets,
                    insert: Some(insert),
                    on_conflict: OnConflict::Error,
                })
                .await?;
            Ok(done(
                "UPDATE",
                o.retracted,
                returning.as_ref().zip(returned),
            ))
        }
        WritePlan::Delete {
            rel,
            select,
            returning,
        } => {
            let lock = engine.table_lock(rel.id);
            let _guard = lock.lock().await;
            let batches = run_select(session, select, params).await?;
            let offsets: Vec<u64> = batches
                .iter()
                .flat_map(|b| {
                    b.column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .map(|o| *o as u64)
                        .collect::<Vec<_>>()
                })
                .collect();
            let returned = match returning {
                Some(r) => {
                    let schema = rel.schema();
                    let rows = batches
                        .iter()
                        .map(|b| RecordBatch::try_new(schema.clone(), b.columns()[1..].to_vec()))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Some(r.evaluate(session, rows, params).await?)
                }
                None => None,
            };
            if offsets.is_empty() {
                return Ok(done("DELETE", 0, returning.as_ref().zip(returned)));
            }
            let o = session
                .write(Op::Change {
                    rel: rel.id,
                    retract: offsets,
                    insert: None,
                    on_conflict: OnConflict::Error,
                })
                .await?;
            Ok(done(
                "DELETE",
                o.retracted,
                returning.as_ref().zip(returned),
            ))
        }
        WritePlan::CopyFrom {
            rel,
            positions,
            format,
        } => Ok(Output::CopyIn(Box::new(CopyIn {
            rel: rel.clone(),
            columns: positions.len(),
            binary: format.kind == CopyFormatKind::Binary,
            decoder: Some(
                CopyDecoder::new(
                    &rel.name,
                    format.clone(),
                    rel.columns.clone(),
                    positions.clone(),
                    rel.schema(),
                )
                .with_limit(session.engine().config().max_statement_memory),
            ),
            error: None,
        }))),
    }
}

/// A write's answer: its command tag and count, or the rows of its
/// RETURNING (whose count the tag shows).
fn done(
    tag: &'static str,
    rows: usize,
    returned: Option<(&Returning, Vec<RecordBatch>)>,
) -> Output {
    match returned {
        None => Output::Command {
            tag,
            rows: Some(rows),
        },
        Some((r, batches)) => Output::Returned {
            tag,
            schema: r.schema.clone(),
            stream: Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    r.schema.clone(),
                    futures::stream::iter(batches.into_iter().map(Ok)),
                ),
            ),
        },
    }
}

/// Writes a change whose RETURNING shows the rows it inserted, which only
/// applying it tells (`ON CONFLICT` drops or merges some): staged in the
/// open block, or in a transaction of its own that commits once RETURNING
/// is evaluated (an error there stores nothing).
async fn write_staged(
    session: &Session,
    op: Op,
    returning: &Returning,
    params: &[ScalarValue],
) -> Result<(Outcome, Option<Vec<RecordBatch>>)> {
    let rows = |o: &Outcome| o.inserted_rows.iter().cloned().collect::<Vec<_>>();
    if session.in_block() {
        let o = session.write(op).await?;
        let out = returning.evaluate(session, rows(&o), params).await?;
        return Ok((o, Some(out)));
    }
    let mut t = crate::txn::Transaction::new(chrono::Utc::now());
    let o = t.stage(session.engine(), op)?;
    let out = returning.evaluate(session, rows(&o), params).await?;
    if let Some(op) = t.into_op()? {
        session.engine().commit(op).await?;
    }
    Ok((o, Some(out)))
}

async fn run_select(
    session: &Session,
    select: &LogicalPlan,
    params: &[ScalarValue],
) -> Result<Vec<RecordBatch>> {
    let plan = bind(select, params)?;
    let state = session.statement_state();
    let physical = state.create_physical_plan(&plan).await?;
    Ok(datafusion::physical_plan::collect(physical, state.task_ctx()).await?)
}

/// Appends Arrow batches to a source or table (connectors, tools): each
/// column is converted to the relation's type, by position; the batches
/// are committed atomically.
pub async fn append_batches(
    engine: &Engine,
    name: &str,
    batches: Vec<RecordBatch>,
) -> Result<Outcome> {
    let rel = engine.relation(name).ok_or_else(|| {
        EngineError::from(crate::catalog::CatalogError::NotFound(name.to_string()))
    })?;
    if !rel.is_base() {
        return Err(not_writable(&rel));
    }
    let positions: Vec<usize> = (0..rel.columns.len()).collect();
    let mut typed = Vec::with_capacity(batches.len());
    let mut base = 0;
    for b in batches {
        if b.num_columns() != rel.columns.len() {
            return Err(EngineError::SyntaxError(format!(
                "batch has {} columns, relation \"{}\" has {}",
                b.num_columns(),
                rel.name,
                rel.columns.len()
            )));
        }
        let n = b.num_rows();
        typed.push(assemble(
            &rel,
            &positions,
            b.columns().to_vec(),
            n,
            base,
            "row",
        )?);
        base += n;
    }
    append(engine, &rel, typed).await
}

/// Appends rows to a source or (plain INSERT / COPY) a table.
async fn append(engine: &Engine, rel: &RelationDef, batches: Vec<RecordBatch>) -> Result<Outcome> {
    match append_op(rel, batches)? {
        Some(op) => engine.commit(op).await,
        None => Ok(Outcome::default()),
    }
}

/// The op that appends rows (`None` if there are none): split into log
/// entries of bounded size and encoded here, on the caller's thread.
fn append_op(rel: &RelationDef, batches: Vec<RecordBatch>) -> Result<Option<Op>> {
    Ok(append_parts(batches)?.map(|(batches, entries)| Op::Append {
        rel: rel.id,
        batches,
        entries,
    }))
}

/// Rows to append, split into log entries of bounded size and encoded
/// (`None` if there are none).
pub(crate) fn append_parts(
    batches: Vec<RecordBatch>,
) -> Result<Option<(Vec<RecordBatch>, Vec<crate::store::EncodedEntry>)>> {
    let batches: Vec<RecordBatch> = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .flat_map(entry::chunks)
        .collect();
    if batches.is_empty() {
        return Ok(None);
    }
    let entries = batches
        .iter()
        .map(|b| entry::encode(EntryKind::Append, b))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Some((batches, entries)))
}

/// A `COPY ... FROM STDIN` in progress. Data is decoded as it arrives; the
/// first error is kept and the rest of the data ignored; nothing is stored
/// unless the whole input decodes and `finish` commits it.
pub struct CopyIn {
    rel: Arc<RelationDef>,
    pub columns: usize,
    /// The data comes in the binary format.
    pub binary: bool,
    decoder: Option<CopyDecoder>,
    error: Option<EngineError>,
}

impl CopyIn {
    pub fn feed(&mut self, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(d) = &mut self.decoder {
            if let Err(e) = d.feed(data) {
                self.error = Some(e.into());
                self.decoder = None;
            }
        }
    }

    /// Commits everything (inside a transaction block: stages it there),
    /// or reports the first error.
    pub async fn finish(mut self, session: &Session) -> Result<Output> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let decoder = self
            .decoder
            .take()
            .ok_or_else(|| EngineError::Internal("COPY finished twice".into()))?;
        let (batches, rows) = decoder.finish()?;
        if let Some(op) = append_op(&self.rel, batches)? {
            session.write(op).await?;
        }
        Ok(Output::Command {
            tag: "COPY",
            rows: Some(rows),
        })
    }
}

/// Why a view cannot be written.
fn not_writable(rel: &crate::catalog::RelationDef) -> EngineError {
    match rel.kind {
        crate::catalog::RelationKind::PlainView => EngineError::Unsupported(format!(
            "cannot write to view \"{}\": views are not updatable; write to the relations it reads",
            rel.name
        )),
        _ => EngineError::WrongObjectType(format!(
            "cannot write to materialized view \"{}\"",
            rel.name
        )),
    }
}

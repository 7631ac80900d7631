//! Statement parsing: Postgres SQL (through sqlparser, with the
//! compatibility rewrites that let DataFusion run client introspection
//! queries) plus Freshet's own grammar: `CREATE SOURCE`, `WATERMARK FOR`,
//! `SHOW SOURCES`, `FLUSH`, and the session statements drivers send.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{self, ColumnOption, Expr, ObjectName, TableConstraint};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::compat::Compat;
use super::SqlError;
use crate::auth::AccessStatement;
use crate::catalog::RelationKind;

/// One parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateRelation(CreateRelation),
    /// `ALTER SOURCE | TABLE name PAUSE | RESUME`
    PauseSource {
        kind: RelationKind,
        name: String,
        paused: bool,
    },
    CreateView(CreateView),
    Drop(DropStatement),
    /// `SHOW SOURCES` / `SHOW TABLES`
    ShowRelations(RelationKind),
    /// `SHOW name`
    ShowVariable(String),
    /// `SHOW CREATE SOURCE | TABLE | MATERIALIZED VIEW | VIEW name`
    ShowCreate {
        kind: RelationKind,
        name: String,
    },
    ShowAll,
    /// `SET [SESSION|LOCAL] name {TO|=} value` (`None` = DEFAULT)
    Set {
        name: String,
        value: Option<String>,
    },
    /// `RESET name` / `RESET ALL` (`None`)
    Reset(Option<String>),
    Begin,
    Commit,
    Rollback,
    /// `TRUNCATE [TABLE] [ONLY] name [, …] [RESTART | CONTINUE IDENTITY]
    /// [CASCADE | RESTRICT]`
    Truncate(Vec<String>),
    /// `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`
    Declare {
        name: String,
        hold: bool,
        query: Box<Statement>,
    },
    /// `FETCH` / `MOVE` `[NEXT | FIRST | n | ALL | FORWARD [n | ALL]] [FROM | IN] name`
    Fetch {
        name: String,
        /// `None`: all the rows left.
        count: Option<u64>,
        /// `MOVE`: skip the rows instead of returning them.
        skip: bool,
    },
    /// `CLOSE name` (`None`: `CLOSE ALL`)
    Close(Option<String>),
    /// `PREPARE name [(type, …)] AS statement`
    PrepareAs {
        name: String,
        body: Box<Statement>,
    },
    /// `EXECUTE name [(value, …)]`: the values' SQL text, comma separated.
    ExecutePrepared {
        name: String,
        args: Option<String>,
    },
    /// `DEALLOCATE [PREPARE] name` (`None`: `ALL`)
    Deallocate(Option<String>),
    /// `SAVEPOINT name`
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`
    RollbackTo(String),
    /// `FLUSH`: accepted for compatibility; every acknowledged write is
    /// already visible.
    Flush,
    /// `CHECKPOINT`: write the views' checkpoint now (a restart then
    /// replays less of the log).
    Checkpoint,
    /// `ALTER MATERIALIZED VIEW name RECOMPUTE` / `REFRESH MATERIALIZED VIEW
    /// name`: rebuild a view (and the views reading it) from its inputs.
    RecomputeView {
        name: String,
        /// The command tag: `ALTER MATERIALIZED VIEW` or `REFRESH MATERIALIZED VIEW`.
        tag: &'static str,
    },
    /// `DISCARD ALL`, `DEALLOCATE ...`: accepted, nothing to do.
    Discard(String),
    /// `COMMENT ON TABLE | VIEW | MATERIALIZED VIEW | SOURCE | COLUMN … IS
    /// 'text' | NULL`.
    Comment(CommentOn),
    /// `ALTER TABLE name action, …` (see [`AlterTable`]).
    AlterTable(AlterTable),
    /// `CREATE INDEX` on a table, source or materialized view.
    CreateIndex(crate::index::ddl::CreateIndex),
    DropIndex(crate::index::ddl::DropIndex),
    /// `ALTER SOURCE | VIEW | MATERIALIZED VIEW … RENAME TO`.
    Rename(crate::engine::rename::Rename),
    /// `CREATE SCHEMA` / `DROP SCHEMA`.
    CreateSchema(crate::schema::CreateSchema),
    CreateDatabase(crate::database::CreateDatabase),
    DropDatabase(crate::database::DropDatabase),
    AlterDatabase(crate::database::AlterDatabase),
    DropSchema(crate::schema::DropSchema),
    /// `VACUUM` / `ANALYZE` [tables]: storage and statistics upkeep that
    /// Freshet does not need; the tables must exist.
    Maintenance {
        tag: &'static str,
        tables: Vec<String>,
    },
    /// Anything DataFusion plans: queries, INSERT, UPDATE, DELETE, EXPLAIN,
    /// and COPY (handled by the engine).
    Sql(Box<ast::Statement>),
    /// An INSERT of literal rows, read without a syntax tree.
    InsertLiterals(Box<super::values::LiteralInsert>),
    /// Roles, privileges and ownership (`CREATE ROLE`, `GRANT`, …).
    Access(crate::auth::AccessStatement),
    /// `SET ROLE name | NONE` / `SET SESSION AUTHORIZATION name | DEFAULT`
    /// (`None`: back to the role that logged in).
    /// `SET ROLE r | NONE`, `SET SESSION AUTHORIZATION`; `RESET ROLE`
    /// (`reset`: answered with tag RESET).
    SetRole {
        role: Option<String>,
        reset: bool,
    },
}

/// `ALTER TABLE [IF EXISTS] name action, …`.
#[derive(Debug, Clone)]
pub struct AlterTable {
    pub name: String,
    pub if_exists: bool,
    pub actions: Vec<AlterAction>,
}

/// One action of an `ALTER TABLE`.
#[derive(Debug, Clone)]
pub enum AlterAction {
    AddColumn {
        column: ColumnSpec,
        if_not_exists: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTo(String),
    /// `ADD [CONSTRAINT name] PRIMARY KEY (columns)`.
    AddPrimaryKey(Vec<String>),
    /// `ALTER [COLUMN] name SET NOT NULL` (`true`) / `DROP NOT NULL`.
    NotNull {
        column: String,
        not_null: bool,
    },
}

/// What `COMMENT ON` names.
#[derive(Debug, Clone)]
pub struct CommentOn {
    /// The relation, and the column for `COMMENT ON COLUMN`.
    pub relation: String,
    pub column: Option<String>,
    /// The kind the statement says the relation is (`None`: a column's).
    pub kind: Option<RelationKind>,
    /// `NULL` removes the comment.
    pub text: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: String,
    pub if_not_exists: bool,
    /// The defining query.
    pub query: Box<ast::Query>,
    pub sql: String,
    /// `EMIT ON WINDOW CLOSE`: emit each window's rows once, when it closes.
    pub emit_on_close: bool,
    /// `EXPLAIN CREATE MATERIALIZED VIEW`: plan only.
    pub explain: bool,
    /// `CREATE [OR REPLACE] VIEW`: a view that is not materialized.
    pub plain: bool,
    /// `OR REPLACE` (plain views only).
    pub or_replace: bool,
    /// The column names given after the view's name (plain views only).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CreateRelation {
    pub kind: RelationKind,
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnSpec>,
    pub primary_key: Vec<String>,
    pub watermark: Option<(String, String)>,
    /// `INCLUDE …`, `WITH (…)`, `FORMAT … ENCODE …` as written.
    pub connector: crate::connectors::spec::RawSpec,
    pub sql: String,
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: ast::DataType,
    pub not_null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    Source,
    Table,
    MaterializedView,
    View,
}

impl DropKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DropKind::Source => "SOURCE",
            DropKind::Table => "TABLE",
            DropKind::MaterializedView => "MATERIALIZED VIEW",
            DropKind::View => "VIEW",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DropStatement {
    pub kind: DropKind,
    pub names: Vec<String>,
    pub if_exists: bool,
    pub cascade: bool,
}

/// Parses SQL text holding zero or more `;`-separated statements.
pub struct SqlParser {
    compat: Compat,
}

impl Default for SqlParser {
    fn default() -> Self {
        SqlParser::new()
    }
}

impl SqlParser {
    pub fn new() -> SqlParser {
        SqlParser {
            compat: Compat::new(),
        }
    }

    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, SqlError> {
        let mut out = Vec::new();
        for text in split_statements(sql) {
            out.push(self.parse_one(text)?);
        }
        Ok(out)
    }

    /// Parses exactly one statement.
    pub fn parse_one(&self, text: &str) -> Result<Statement, SqlError> {
        let mut st = self.parse_one_inner(text).map_err(|e| match e {
            // the tokenizer refuses an escape that makes a NUL character
            // (E'\000', E'\x00', …), as Postgres does, in its own words
            SqlError::Syntax(m)
                if m.starts_with("Unterminated encoded string literal") && has_nul_escape(text) =>
            {
                SqlError::InvalidEncoding(
                    "invalid byte sequence for encoding \"UTF8\": 0x00".into(),
                )
            }
            other => other,
        })?;
        qualify(&mut st)?;
        Ok(st)
    }

    /// `PREPARE name [(type, …)] AS statement` (the declared types are
    /// read from the statement itself, as for a protocol-level prepare).
    fn parse_prepare(&self, text: &str) -> Result<Statement, SqlError> {
        let upper = text.to_ascii_uppercase();
        let at = upper
            .match_indices("AS")
            .map(|(i, _)| i)
            .find(|&i| {
                let before = upper[..i].chars().next_back();
                let after = upper[i + 2..].chars().next();
                before.is_some_and(|c| c.is_whitespace() || c == ')')
                    && after.is_some_and(char::is_whitespace)
            })
            .ok_or_else(|| SqlError::Syntax("syntax error: PREPARE name AS statement".into()))?;
        let head = &text[..at];
        let name_end = head.find('(').unwrap_or(head.len());
        let name = statement_words(&head[..name_end])
            .get(1)
            .cloned()
            .ok_or_else(|| SqlError::Syntax("syntax error: PREPARE needs a name".into()))?;
        let body = self.parse_one_inner(&text[at + 2..])?;
        Ok(Statement::PrepareAs {
            name,
            body: Box::new(body),
        })
    }

    /// `DECLARE name … CURSOR [WITH[OUT] HOLD] FOR query`.
    fn parse_declare(&self, text: &str) -> Result<Statement, SqlError> {
        let upper = text.to_ascii_uppercase();
        let Some(at) = upper.find(" FOR ") else {
            return Err(SqlError::Syntax(
                "syntax error: DECLARE … CURSOR FOR query".into(),
            ));
        };
        let head = statement_words(&text[..at]);
        let query = &text[at + 5..];
        let name = head
            .get(1)
            .cloned()
            .ok_or_else(|| SqlError::Syntax("syntax error: expected a cursor name".into()))?;
        let words: Vec<&str> = head.iter().skip(2).map(String::as_str).collect();
        if !words.contains(&"cursor") {
            return Err(SqlError::Syntax("syntax error: expected CURSOR".into()));
        }
        if words.windows(2).any(|w| w == ["no", "scroll"]) {
            // forward only: what cursors here are
        } else if words.contains(&"scroll") {
            return Err(SqlError::Unsupported(
                "SCROLL cursors: cursors only go forward".into(),
            ));
        }
        let hold = words.windows(2).any(|w| w == ["with", "hold"]);
        let query = self.parse_one_inner(query)?;
        if !matches!(&query, Statement::Sql(q) if matches!(q.as_ref(), ast::Statement::Query(_))) {
            return Err(SqlError::Syntax(
                "DECLARE CURSOR needs a SELECT or VALUES query".into(),
            ));
        }
        Ok(Statement::Declare {
            name,
            hold,
            query: Box::new(query),
        })
    }

    fn parse_one_inner(&self, text: &str) -> Result<Statement, SqlError> {
        // (before anything tokenizes a possibly huge VALUES list)
        if let Some(l) = super::values::literal_insert(text) {
            return Ok(Statement::InsertLiterals(Box::new(l)));
        }
        super::depth::check(text)?;
        let text = &*super::asof::normalize_asof(text)?;
        let text = &*super::window::normalize_flink_windows(text)?;
        let words = leading_words(text, 3);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        use super::access;
        let access = |s: AccessStatement| Ok(Statement::Access(s));
        match w.as_slice() {
            ["CREATE", "ROLE" | "USER", ..] => access(access::parse_create_role(text)?),
            ["ALTER", "ROLE" | "USER", ..] => access(access::parse_alter_role(text)?),
            ["DROP", "ROLE" | "USER", ..] => access(access::parse_drop_role(text)?),
            ["GRANT", ..] | ["REVOKE", ..] => access(access::parse_grant(text)?),
            ["REASSIGN", ..] => access(access::parse_reassign(text)?),
            ["ALTER", "TABLE" | "SOURCE", ..]
                if matches!(
                    statement_words(text).last().map(String::as_str),
                    Some("pause" | "resume")
                ) =>
            {
                parse_pause(text)
            }
            ["ALTER", "TABLE" | "SOURCE", ..] | ["ALTER", "MATERIALIZED", "VIEW"]
                if access::parse_alter_owner(text)?.is_some() =>
            {
                access(
                    access::parse_alter_owner(text)?
                        .ok_or_else(|| SqlError::Syntax("expected ALTER … OWNER TO".into()))?,
                )
            }
            ["SET", "ROLE", ..]
            | ["SET", "SESSION" | "LOCAL", "ROLE"]
            | ["SET", "SESSION", "AUTHORIZATION"] => Ok(Statement::SetRole {
                role: access::parse_set_role(text)?,
                reset: false,
            }),
            ["RESET", "ROLE"] | ["RESET", "SESSION", "AUTHORIZATION"] => Ok(Statement::SetRole {
                role: None,
                reset: true,
            }),
            ["CREATE", "SOURCE", ..] => parse_create(text, RelationKind::Source),
            ["CREATE", "TABLE", ..] => parse_create(text, RelationKind::Table),
            ["CREATE", "MATERIALIZED", "VIEW"] => parse_create_view(text, false),
            ["EXPLAIN", "CREATE", "MATERIALIZED"] => {
                let rest = text.trim_start()[7..].trim_start();
                parse_create_view(rest, true)
            }
            ["CREATE", "VIEW", ..] | ["CREATE", "OR", "REPLACE"] => parse_create_view(text, false),
            ["CREATE", "TEMP" | "TEMPORARY" | "UNLOGGED", ..] => Err(SqlError::Unsupported(
                format!("CREATE {} TABLE is not supported", w[1]),
            )),
            ["CREATE", "INDEX" | "UNIQUE", ..] => Ok(Statement::CreateIndex(
                crate::index::ddl::parse_create_index(text)?,
            )),
            ["DROP", "INDEX", ..] => Ok(Statement::DropIndex(crate::index::ddl::parse_drop_index(
                text,
            )?)),
            ["CREATE", "SCHEMA", ..] => {
                Ok(Statement::CreateSchema(crate::schema::parse_create(text)?))
            }
            ["DROP", "SCHEMA", ..] => Ok(Statement::DropSchema(crate::schema::parse_drop(text)?)),
            ["CREATE", "DATABASE", ..] => Ok(Statement::CreateDatabase(
                crate::database::parse::parse_create(text)?,
            )),
            ["DROP", "DATABASE", ..] => Ok(Statement::DropDatabase(
                crate::database::parse::parse_drop(text)?,
            )),
            ["ALTER", "DATABASE", ..] => Ok(Statement::AlterDatabase(
                crate::database::parse::parse_alter(text)?,
            )),
            ["DROP", ..] => parse_drop(text),
            ["SHOW", ..] => parse_show(text),
            ["SET", ..] => parse_set(text),
            ["RESET", ..] => parse_reset(text),
            ["BEGIN", ..] | ["START", "TRANSACTION", ..] => Ok(Statement::Begin),
            ["COMMIT", ..] | ["END", ..] => Ok(Statement::Commit),
            ["TRUNCATE", ..] => parse_truncate(text),
            ["DECLARE", ..] => self.parse_declare(text),
            ["FETCH", ..] | ["MOVE", ..] => parse_fetch(text),
            ["CLOSE", ..] => {
                let w = statement_words(text);
                match w.as_slice() {
                    [_, all] if all == "all" => Ok(Statement::Close(None)),
                    [_, name] => Ok(Statement::Close(Some(name.clone()))),
                    _ => Err(SqlError::Syntax("syntax error: expected CLOSE name".into())),
                }
            }
            ["SAVEPOINT", ..] => Ok(Statement::Savepoint(savepoint_name(text, 1)?)),
            ["RELEASE", ..] => Ok(Statement::Release(savepoint_name(text, 1)?)),
            ["ROLLBACK", ..] if rollback_to(text).is_some() => Ok(Statement::RollbackTo(
                rollback_to(text).ok_or_else(|| SqlError::Syntax("expected a savepoint".into()))?,
            )),
            ["ROLLBACK", ..] | ["ABORT", ..] => Ok(Statement::Rollback),
            ["FLUSH"] => Ok(Statement::Flush),
            ["CHECKPOINT"] => Ok(Statement::Checkpoint),
            ["DISCARD", ..] => Ok(Statement::Discard(w[0].to_string())),
            ["COMMENT", "ON", ..] => parse_comment(text),
            ["DEALLOCATE", ..] => {
                let words = statement_words(text);
                match words.as_slice() {
                    [_, all] | [_, _, all] if all == "all" => Ok(Statement::Deallocate(None)),
                    [_, name] | [_, _, name] => Ok(Statement::Deallocate(Some(name.clone()))),
                    _ => Err(SqlError::Syntax("syntax error: DEALLOCATE name".into())),
                }
            }
            ["PREPARE", ..] if !text.to_ascii_uppercase().contains("TRANSACTION") => {
                self.parse_prepare(text)
            }
            ["EXECUTE", ..] => parse_execute(text),
            ["ALTER", "MATERIALIZED", "VIEW"] | ["ALTER", "VIEW" | "SOURCE", ..]
                if crate::engine::rename::is_rename(&statement_words(text)) =>
            {
                Ok(Statement::Rename(crate::engine::rename::parse(text)?))
            }
            ["ALTER", "MATERIALIZED", "VIEW"] | ["REFRESH", "MATERIALIZED", "VIEW"] => {
                parse_recompute(text)
            }
            ["ALTER", "TABLE", ..] => parse_alter_table(text),
            ["VACUUM", ..] | ["ANALYZE" | "ANALYSE", ..] => parse_maintenance(text),
            ["COPY", ..] => self.parse_sql(&copy_boolean_options(text)),
            ["ALTER", ..] => Err(SqlError::Unsupported(format!(
                "ALTER {} is not supported",
                w.get(1).copied().unwrap_or_default()
            ))),
            _ => self.parse_sql(text),
        }
    }

    /// A statement DataFusion plans (queries, writes, COPY).
    fn parse_sql(&self, text: &str) -> Result<Statement, SqlError> {
        let mut stmts = self.compat.parse(text).map_err(syntax)?;
        for st in &stmts {
            refuse_collation(st)?;
        }
        match stmts.len() {
            1 => {
                let mut st = stmts.remove(0);
                ready_to_plan(&mut st)?;
                Ok(Statement::Sql(Box::new(st)))
            }
            0 => Err(SqlError::Syntax("empty statement".into())),
            _ => Err(SqlError::Syntax(
                "expected one statement, found several".into(),
            )),
        }
    }

    /// The faithful Postgres-compatibility rewrites (function qualifiers,
    /// operators; see `compat`) applied to a statement built elsewhere.
    pub fn rewrite(&self, s: ast::Statement) -> ast::Statement {
        self.compat.rewrite(s)
    }
}

pub(crate) fn syntax(e: ParserError) -> SqlError {
    match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => SqlError::Syntax(m),
        ParserError::RecursionLimitExceeded => {
            SqlError::Syntax("statement is nested too deeply".into())
        }
    }
}

/// Splits SQL text at top-level semicolons, honouring quotes, dollar quotes
/// and comments. Returns the non-empty statements, trimmed.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                // E'...' strings allow backslash escapes.
                let escapes = i > 0 && (b[i - 1] == b'E' || b[i - 1] == b'e');
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if i + 1 < b.len() && b[i + 1] == b'\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if i + 1 < b.len() && b[i + 1] == b'-' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if i + 1 < b.len() && b[i + 1] == b'*' => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && i + 1 < b.len() && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // $tag$ ... $tag$ (tag may be empty); a `$1` placeholder is not a quote.
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let tag_ok = j < b.len()
                    && b[j] == b'$'
                    && !b[i + 1..j].first().is_some_and(|c| c.is_ascii_digit());
                if tag_ok {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b';' => {
                let s = sql[start..i].trim();
                if !s.is_empty() && !only_comments(s) {
                    out.push(s);
                }
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < sql.len() {
        let s = sql[start..].trim();
        if !s.is_empty() && !only_comments(s) {
            out.push(s);
        }
    }
    out
}

fn only_comments(s: &str) -> bool {
    datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, s)
        .tokenize()
        .map(|ts| ts.iter().all(|t| matches!(t, Token::Whitespace(_))))
        .unwrap_or(false)
}

/// The first `n` words of a statement, upper-cased, skipping comments.
fn leading_words(text: &str, n: usize) -> Vec<String> {
    let tokenize = |t: &str| {
        datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, t).tokenize()
    };
    // Only the start matters; keep tokenizing cheap for long statements. A
    // cut inside a quoted literal does not tokenize: then take it all.
    let tokens = match tokenize(prefix(text, 200)) {
        Ok(t) => t,
        Err(_) => match tokenize(text) {
            Ok(t) => t,
            Err(_) => return vec![],
        },
    };
    tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(n)
        .map_while(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    // cut at a whitespace boundary so no token is split
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    match s[..end].rfind(char::is_whitespace) {
        Some(ws) => &s[..ws],
        None => &s[..end],
    }
}

pub(crate) fn parser(text: &str) -> Result<Parser<'static>, SqlError> {
    Parser::new(&crate::sql::dialect::Postgres)
        .with_recursion_limit(super::depth::MAX_DEPTH)
        .try_with_sql(text)
        .map_err(syntax)
}

/// Lower-cases unquoted identifiers, as Postgres does.
pub fn normalize_ident(id: &ast::Ident) -> String {
    match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_ascii_lowercase(),
    }
}

/// Resolves the unqualified relations a statement's syntax trees name
/// against the search path (see [`super::names::qualify`]).
fn qualify(st: &mut Statement) -> Result<(), SqlError> {
    match st {
        Statement::Sql(ast) => super::names::qualify(ast.as_mut()),
        Statement::CreateView(v) => super::names::qualify(v.query.as_mut()),
        Statement::Declare { query, .. } => qualify(query),
        Statement::PrepareAs { body, .. } => qualify(body),
        _ => Ok(()),
    }
}

/// The catalog name of a reference to a relation (see [`super::names`]:
/// `public.x` is `x`, `s.x` is `s.x`, an unqualified name is looked up on
/// the search path).
pub fn object_name(name: &ObjectName) -> Result<String, SqlError> {
    super::names::existing(name)
}

/// What every statement goes through before DataFusion plans it: long
/// chains balanced, then refused if still too deep.
fn ready_to_plan(st: &mut ast::Statement) -> Result<(), SqlError> {
    super::depth::balance(st);
    super::depth::check_planned(st)
}

/// Whether `text` holds a backslash escape whose value is NUL (`\0`,
/// `\000`, `\x00`, `\u0000`, `\U00000000`).
fn has_nul_escape(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        if b[i] != b'\\' || i + 1 >= b.len() {
            return false;
        }
        let rest = &text[i + 1..];
        let digits = |prefix: usize, radix: u32, max: usize| {
            let d: String = rest[prefix..]
                .chars()
                .take(max)
                .take_while(|c| c.is_digit(radix))
                .collect();
            !d.is_empty() && u32::from_str_radix(&d, radix) == Ok(0)
        };
        match b[i + 1] {
            b'0'..=b'7' => digits(0, 8, 3),
            b'x' => digits(1, 16, 2),
            b'u' => rest.len() >= 5 && digits(1, 16, 4),
            b'U' => rest.len() >= 9 && digits(1, 16, 8),
            _ => false,
        }
    })
}

/// A comma-separated list of relation names (`a, public.b`).
pub(crate) fn object_names(p: &mut Parser) -> Result<Vec<String>, SqlError> {
    p.parse_comma_separated(|p| p.parse_object_name(false))
        .map_err(syntax)?
        .iter()
        .map(object_name)
        .collect()
}

pub(crate) fn expect_end(p: &mut Parser) -> Result<(), SqlError> {
    while p.consume_token(&Token::SemiColon) {}
    match p.peek_token().token {
        Token::EOF => Ok(()),
        t => Err(SqlError::Syntax(format!("syntax error at or near \"{t}\""))),
    }
}

/// `ALTER SOURCE | TABLE name PAUSE | RESUME`.
fn parse_pause(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::ALTER).map_err(syntax)?;
    let kind = if p.parse_keyword(Keyword::SOURCE) {
        RelationKind::Source
    } else {
        p.expect_keyword_is(Keyword::TABLE).map_err(syntax)?;
        RelationKind::Table
    };
    let name = object_name(&p.parse_object_name(false).map_err(syntax)?)?;
    let paused = next_word(&mut p)? == "pause";
    expect_end(&mut p)?;
    Ok(Statement::PauseSource { kind, name, paused })
}

/// A `WITH (…)` list of `key = value` where keys may be dotted
/// (`properties.bootstrap.server`) and values are literals or words.
/// Keys are lowercased.
pub(crate) fn dotted_options(p: &mut Parser) -> Result<BTreeMap<String, String>, SqlError> {
    p.expect_token(&Token::LParen).map_err(syntax)?;
    let mut out = BTreeMap::new();
    if p.consume_token(&Token::RParen) {
        return Ok(out);
    }
    loop {
        let mut key = String::new();
        loop {
            let t = p.next_token();
            match &t.token {
                Token::Word(w) => key.push_str(&w.value.to_ascii_lowercase()),
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => key.push_str(s),
                Token::Number(n, _) => key.push_str(n),
                other => {
                    return Err(SqlError::Syntax(format!(
                        "syntax error at or near \"{other}\""
                    )))
                }
            }
            if !p.consume_token(&Token::Period) {
                break;
            }
            key.push('.');
        }
        p.expect_token(&Token::Eq).map_err(syntax)?;
        let t = p.next_token();
        let value = match &t.token {
            Token::SingleQuotedString(s) => s.clone(),
            Token::Number(n, _) => n.clone(),
            Token::Word(w) => w.value.clone(),
            Token::Minus => match p.next_token().token {
                Token::Number(n, _) => format!("-{n}"),
                other => {
                    return Err(SqlError::Syntax(format!(
                        "syntax error at or near \"{other}\""
                    )))
                }
            },
            other => {
                return Err(SqlError::Syntax(format!(
                    "syntax error at or near \"{other}\""
                )))
            }
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(SqlError::Syntax(format!(
                "option \"{key}\" specified more than once"
            )));
        }
        if p.consume_token(&Token::RParen) {
            return Ok(out);
        }
        p.expect_token(&Token::Comma).map_err(syntax)?;
    }
}

fn next_word(p: &mut Parser) -> Result<String, SqlError> {
    match p.next_token().token {
        Token::Word(w) => Ok(w.value.to_ascii_lowercase()),
        other => Err(SqlError::Syntax(format!(
            "syntax error at or near \"{other}\""
        ))),
    }
}

fn peek_word(p: &Parser, word: &str) -> bool {
    matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// After a source's or table's columns: `INCLUDE kind ['header'] [AS
/// name]`… (each item after its own `INCLUDE`, or after a comma),
/// `WITH (…)`, `FORMAT f ENCODE e [(…)]`, in RisingWave's order.
fn connector_clauses(p: &mut Parser) -> Result<crate::connectors::spec::RawSpec, SqlError> {
    let mut raw = crate::connectors::spec::RawSpec::default();
    let mut listing = false;
    while peek_word(p, "INCLUDE") || (listing && p.consume_token(&Token::Comma)) {
        if !listing || peek_word(p, "INCLUDE") {
            p.next_token();
        }
        listing = true;
        let what = next_word(p)?;
        let header = match p.peek_token().token {
            Token::SingleQuotedString(s) => {
                p.next_token();
                Some(s)
            }
            _ => None,
        };
        let alias = if p.parse_keyword(Keyword::AS) {
            Some(normalize_ident(&p.parse_identifier().map_err(syntax)?))
        } else {
            None
        };
        raw.include.push((what, header, alias));
    }
    if p.parse_keyword(Keyword::WITH) {
        raw.options = dotted_options(p)?;
    }
    if p.parse_keyword(Keyword::FORMAT) {
        let format = next_word(p)?;
        if !peek_word(p, "ENCODE") {
            return Err(SqlError::Syntax(format!(
                "FORMAT {} needs ENCODE (JSON, CSV, AVRO or BYTES)",
                format.to_ascii_uppercase()
            )));
        }
        p.next_token();
        let encode = next_word(p)?;
        let opts = if p.peek_token().token == Token::LParen {
            dotted_options(p)?
        } else {
            BTreeMap::new()
        };
        raw.format = Some((format, encode, opts));
    }
    Ok(raw)
}

fn parse_create(text: &str, kind: RelationKind) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::CREATE).map_err(syntax)?;
    p.next_token(); // SOURCE | TABLE
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = super::names::new_relation(&p.parse_object_name(false).map_err(syntax)?)?;
    if p.parse_keyword(Keyword::AS) {
        return Err(SqlError::Unsupported(format!(
            "CREATE {} ... AS is not supported",
            kind.as_str().to_ascii_uppercase()
        )));
    }
    p.expect_token(&Token::LParen).map_err(syntax)?;
    let mut columns = Vec::new();
    let mut primary_key = Vec::new();
    let mut watermark = None;
    loop {
        if p.consume_token(&Token::RParen) {
            break;
        }
        if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("WATERMARK"))
        {
            p.next_token();
            p.expect_keyword_is(Keyword::FOR).map_err(syntax)?;
            let col = normalize_ident(&p.parse_identifier().map_err(syntax)?);
            p.expect_keyword_is(Keyword::AS).map_err(syntax)?;
            let expr: Expr = p.parse_expr().map_err(syntax)?;
            if watermark.is_some() {
                return Err(SqlError::InvalidDefinition(
                    "only one WATERMARK clause is allowed".into(),
                ));
            }
            if kind != RelationKind::Source {
                return Err(SqlError::InvalidDefinition(
                    "WATERMARK FOR is only allowed on sources".into(),
                ));
            }
            watermark = Some((col, expr.to_string()));
        } else if let Some(c) = p.parse_optional_table_constraint().map_err(syntax)? {
            match c {
                TableConstraint::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(SqlError::InvalidDefinition(format!(
                            "multiple primary keys for table \"{name}\" are not allowed"
                        )));
                    }
                    for ic in pk.columns {
                        match ic.column.expr {
                            Expr::Identifier(id) => primary_key.push(normalize_ident(&id)),
                            e => {
                                return Err(SqlError::Unsupported(format!(
                                    "primary key on expression {e}"
                                )))
                            }
                        }
                    }
                }
                other => return Err(SqlError::Unsupported(format!("table constraint {other}"))),
            }
        } else {
            let def = p.parse_column_def().map_err(syntax)?;
            let col_name = normalize_ident(&def.name);
            let mut not_null = false;
            for opt in def.options {
                match opt.option {
                    ColumnOption::NotNull => not_null = true,
                    ColumnOption::Null => not_null = false,
                    ColumnOption::PrimaryKey(_) => {
                        if !primary_key.is_empty() {
                            return Err(SqlError::InvalidDefinition(format!(
                                "multiple primary keys for table \"{name}\" are not allowed"
                            )));
                        }
                        primary_key.push(col_name.clone());
                    }
                    other => {
                        return Err(SqlError::Unsupported(format!(
                            "column option {other} (column \"{col_name}\")"
                        )))
                    }
                }
            }
            columns.push(ColumnSpec {
                name: col_name,
                data_type: def.data_type,
                not_null,
            });
        }
        if !p.consume_token(&Token::Comma) {
            p.expect_token(&Token::RParen).map_err(syntax)?;
            break;
        }
    }
    let connector = connector_clauses(&mut p)?;
    expect_end(&mut p)?;
    if kind == RelationKind::Source && !primary_key.is_empty() {
        return Err(SqlError::InvalidDefinition(
            "a source is append-only and cannot have a PRIMARY KEY; use CREATE TABLE".into(),
        ));
    }
    Ok(Statement::CreateRelation(CreateRelation {
        kind,
        name,
        if_not_exists,
        columns,
        primary_key,
        watermark,
        connector,
        sql: text.to_string(),
    }))
}

/// 0A000 for a `COLLATE` other than the byte order.
fn refuse_collation(st: &ast::Statement) -> Result<(), SqlError> {
    match super::compat::remaining_collation(st) {
        Some(c) => Err(SqlError::Unsupported(format!(
            "COLLATE {c} is not supported: text compares by bytes, as in COLLATE \"C\""
        ))),
        None => Ok(()),
    }
}

/// Parses a stored view query.
pub fn parse_query(text: &str) -> Result<Box<ast::Query>, SqlError> {
    let text = &*super::asof::normalize_asof(text)?;
    let text = &*super::window::normalize_flink_windows(text)?;
    let mut p = parser(text)?;
    let q = p.parse_query().map_err(syntax)?;
    expect_end(&mut p)?;
    view_query(q)
}

/// A view's query as it is planned: Postgres' spellings
/// ([`super::compat::faithful`]), checked like any statement.
fn view_query(q: Box<ast::Query>) -> Result<Box<ast::Query>, SqlError> {
    let mut st = super::compat::faithful(ast::Statement::Query(q));
    refuse_collation(&st)?;
    ready_to_plan(&mut st)?;
    match st {
        ast::Statement::Query(q) => Ok(q),
        _ => Err(SqlError::Plan("a query stopped being a query".into())),
    }
}

fn parse_create_view(text: &str, explain: bool) -> Result<Statement, SqlError> {
    let words: Vec<String> = text
        .trim_end()
        .trim_end_matches(';')
        .split_whitespace()
        .rev()
        .take(4)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let emit_on_close = words == ["CLOSE", "WINDOW", "ON", "EMIT"];
    let full_text = text;
    let text = if emit_on_close {
        // Cut the clause off: the rest is a plain CREATE MATERIALIZED VIEW.
        let t = text.trim_end().trim_end_matches(';').trim_end();
        let mut cut = t.len();
        for _ in 0..4 {
            cut = t[..cut].trim_end().rfind(char::is_whitespace).unwrap_or(0);
        }
        &t[..cut]
    } else {
        text
    };
    let mut p = parser(text)?;
    let stmt = p.parse_statement().map_err(syntax)?;
    expect_end(&mut p)?;
    match stmt {
        ast::Statement::CreateView(v) if !v.materialized => {
            if emit_on_close || explain {
                return Err(SqlError::Syntax(
                    "EMIT ON WINDOW CLOSE and EXPLAIN apply to materialized views only".into(),
                ));
            }
            if v.temporary {
                return Err(SqlError::Unsupported("CREATE TEMPORARY VIEW".into()));
            }
            Ok(Statement::CreateView(CreateView {
                name: super::names::new_relation(&v.name)?,
                if_not_exists: v.if_not_exists,
                query: view_query(v.query)?,
                sql: full_text.to_string(),
                explain: false,
                emit_on_close: false,
                plain: true,
                or_replace: v.or_replace,
                columns: v.columns.iter().map(|c| c.name.value.clone()).collect(),
            }))
        }
        ast::Statement::CreateView(v) => {
            if v.or_replace {
                return Err(SqlError::Unsupported(
                    "CREATE OR REPLACE MATERIALIZED VIEW".into(),
                ));
            }
            if !v.columns.is_empty() {
                return Err(SqlError::Unsupported(
                    "a column list on CREATE MATERIALIZED VIEW (alias the columns in the query)"
                        .into(),
                ));
            }
            Ok(Statement::CreateView(CreateView {
                name: super::names::new_relation(&v.name)?,
                if_not_exists: v.if_not_exists,
                query: view_query(v.query)?,
                sql: full_text.to_string(),
                explain,
                emit_on_close,
                plain: false,
                or_replace: false,
                columns: vec![],
            }))
        }
        other => Err(SqlError::Syntax(format!(
            "expected CREATE [MATERIALIZED] VIEW, found {other}"
        ))),
    }
}

/// A COPY's boolean options written `on` / `off` (`WITH (FREEZE on,
/// HEADER off)`, as pgbench sends them) as `true` / `false`, which is what
/// the SQL parser reads; only in the option list after `STDIN` / `STDOUT`.
fn copy_boolean_options(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(at) = ["stdin", "stdout"]
        .iter()
        .filter_map(|w| lower.rfind(w))
        .max()
    else {
        return text.to_string();
    };
    let (head, tail) = text.split_at(at);
    let mut out = String::with_capacity(text.len());
    out.push_str(head);
    let words: Vec<&str> = tail
        .split_inclusive(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    let mut previous_option = false;
    for w in words {
        let word = w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        let sep = &w[word.len()..];
        let lw = word.to_ascii_lowercase();
        if previous_option && (lw == "on" || lw == "off") {
            out.push_str(if lw == "on" { "true" } else { "false" });
            out.push_str(sep);
            previous_option = false;
            continue;
        }
        if !word.is_empty() {
            previous_option = matches!(lw.as_str(), "freeze" | "header");
        }
        out.push_str(w);
    }
    out
}

/// `VACUUM [FULL | FREEZE | VERBOSE | ANALYZE | (options)] [table [(columns)], …]`
/// and `ANALYZE [VERBOSE] [table, …]`: the tables named.
fn parse_maintenance(text: &str) -> Result<Statement, SqlError> {
    let words = statement_words(text);
    let tag = if words.first().map(String::as_str) == Some("vacuum") {
        "VACUUM"
    } else {
        "ANALYZE"
    };
    // drop a parenthesized option list, then the option words
    let body: String = {
        let rest = text.trim_start();
        let rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
        let rest = rest.trim_start();
        if rest.starts_with('(') {
            rest.find(')').map_or("", |i| &rest[i + 1..]).to_string()
        } else {
            rest.to_string()
        }
    };
    let mut tables = Vec::new();
    for item in body.trim().trim_end_matches(';').split(',') {
        let item = item.split('(').next().unwrap_or_default().trim();
        let name = item
            .split_whitespace()
            .filter(|w| {
                !matches!(
                    w.to_ascii_lowercase().as_str(),
                    "full" | "freeze" | "verbose" | "analyze" | "analyse"
                )
            })
            .collect::<Vec<_>>();
        match name.as_slice() {
            [] => {}
            [n] => {
                let mut p = parser(n)?;
                let name = p.parse_object_name(false).map_err(syntax)?;
                expect_end(&mut p)?;
                tables.push(object_name(&name)?);
            }
            _ => return Err(SqlError::Syntax(format!("syntax error in {tag}: {item}"))),
        }
    }
    Ok(Statement::Maintenance { tag, tables })
}

/// `ALTER TABLE` (see [`AlterTable`]): adding, dropping and renaming
/// columns, renaming the table, `SET` / `DROP NOT NULL`. Other actions are
/// refused with 0A000.
fn parse_alter_table(text: &str) -> Result<Statement, SqlError> {
    use ast::{AlterColumnOperation as C, AlterTableOperation as A};
    let mut p = parser(text)?;
    let stmt = p.parse_statement().map_err(syntax)?;
    expect_end(&mut p)?;
    let ast::Statement::AlterTable(alter) = stmt else {
        return Err(SqlError::Syntax("expected ALTER TABLE".into()));
    };
    if alter.operations.is_empty() {
        return Err(SqlError::Syntax("ALTER TABLE needs an action".into()));
    }
    let mut actions = Vec::with_capacity(alter.operations.len());
    for op in alter.operations {
        let action = match op {
            A::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            } => {
                let name = normalize_ident(&column_def.name);
                let mut not_null = false;
                for opt in &column_def.options {
                    match &opt.option {
                        ColumnOption::NotNull => not_null = true,
                        ColumnOption::Null => not_null = false,
                        other => {
                            return Err(SqlError::Unsupported(format!(
                                "column option {other} in ALTER TABLE ADD COLUMN (column \"{name}\")"
                            )))
                        }
                    }
                }
                AlterAction::AddColumn {
                    column: ColumnSpec {
                        name,
                        data_type: column_def.data_type,
                        not_null,
                    },
                    if_not_exists,
                }
            }
            A::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            } => {
                if matches!(drop_behavior, Some(ast::DropBehavior::Cascade)) {
                    return Err(SqlError::Unsupported(
                        "ALTER TABLE DROP COLUMN ... CASCADE".into(),
                    ));
                }
                let [column] = column_names.as_slice() else {
                    return Err(SqlError::Syntax(
                        "syntax error: DROP COLUMN takes one column; repeat DROP COLUMN for more"
                            .into(),
                    ));
                };
                AlterAction::DropColumn {
                    name: normalize_ident(column),
                    if_exists,
                }
            }
            A::RenameColumn {
                old_column_name,
                new_column_name,
            } => AlterAction::RenameColumn {
                from: normalize_ident(&old_column_name),
                to: normalize_ident(&new_column_name),
            },
            A::RenameTable { table_name } => {
                let (ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n)) =
                    table_name;
                // (a new name takes no schema: it stays in the table's)
                let [part] = n.0.as_slice() else {
                    return Err(SqlError::Syntax(format!(
                        "syntax error at or near \".\": RENAME TO {n} takes a name without a schema"
                    )));
                };
                let id = part
                    .as_ident()
                    .ok_or_else(|| SqlError::Syntax(format!("invalid name {n}")))?;
                let name = normalize_ident(id);
                super::names::check_no_dot(&name, "relation")?;
                AlterAction::RenameTo(name)
            }
            A::AddConstraint {
                constraint: ast::TableConstraint::PrimaryKey(pk),
                ..
            } => {
                let mut columns = Vec::with_capacity(pk.columns.len());
                for ic in pk.columns {
                    match ic.column.expr {
                        Expr::Identifier(id) => columns.push(normalize_ident(&id)),
                        e => {
                            return Err(SqlError::Unsupported(format!(
                                "primary key on expression {e}"
                            )))
                        }
                    }
                }
                AlterAction::AddPrimaryKey(columns)
            }
            A::AlterColumn {
                column_name,
                op: op @ (C::SetNotNull | C::DropNotNull),
            } => AlterAction::NotNull {
                column: normalize_ident(&column_name),
                not_null: matches!(op, C::SetNotNull),
            },
            other => {
                return Err(SqlError::Unsupported(format!(
                    "ALTER TABLE {other} is not supported (ADD COLUMN, DROP COLUMN, RENAME COLUMN, RENAME TO and ALTER COLUMN SET/DROP NOT NULL are)"
                )))
            }
        };
        actions.push(action);
    }
    // RENAME is a statement of its own in PostgreSQL's grammar
    let renames = actions.iter().any(|a| {
        matches!(
            a,
            AlterAction::RenameColumn { .. } | AlterAction::RenameTo(_)
        )
    });
    if renames && actions.len() > 1 {
        return Err(SqlError::Syntax(
            "syntax error at or near \"RENAME\": RENAME cannot be combined with other ALTER TABLE actions".into(),
        ));
    }
    Ok(Statement::AlterTable(AlterTable {
        name: object_name(&alter.name)?,
        if_exists: alter.if_exists,
        actions,
    }))
}

/// `COMMENT ON … IS …` (see [`CommentOn`]); `COMMENT ON SOURCE` is read as
/// the table form (sqlparser does not know sources).
fn parse_comment(text: &str) -> Result<Statement, SqlError> {
    use ast::CommentObject as O;
    let source = statement_words(text).get(2).map(String::as_str) == Some("source");
    let text = if source {
        let at = text
            .to_ascii_lowercase()
            .find("source")
            .ok_or_else(|| SqlError::Syntax("COMMENT ON SOURCE".into()))?;
        format!("{}TABLE{}", &text[..at], &text[at + "source".len()..])
    } else {
        text.to_string()
    };
    let mut p = parser(&text)?;
    let stmt = p.parse_statement().map_err(syntax)?;
    expect_end(&mut p)?;
    let ast::Statement::Comment {
        object_type,
        object_name: name,
        comment,
        ..
    } = stmt
    else {
        return Err(SqlError::Syntax("expected COMMENT ON".into()));
    };
    let (relation, column, kind) = match object_type {
        O::Table if source => (object_name(&name)?, None, Some(RelationKind::Source)),
        O::Table => (object_name(&name)?, None, Some(RelationKind::Table)),
        O::View => (object_name(&name)?, None, Some(RelationKind::PlainView)),
        O::MaterializedView => (object_name(&name)?, None, Some(RelationKind::View)),
        O::Column => {
            let mut parts = name.0.clone();
            let column = parts
                .pop()
                .and_then(|p| p.as_ident().map(normalize_ident))
                .ok_or_else(|| SqlError::Syntax("COMMENT ON COLUMN needs table.column".into()))?;
            if parts.is_empty() {
                return Err(SqlError::Syntax("column name must be qualified".into()));
            }
            (object_name(&ast::ObjectName(parts))?, Some(column), None)
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "COMMENT ON {other} is not supported (tables, sources, views, materialized views and columns are)"
            )));
        }
    };
    Ok(Statement::Comment(CommentOn {
        relation,
        column,
        kind,
        text: comment,
    }))
}

/// `FETCH` / `MOVE` (see [`Statement::Fetch`]); backward directions are
/// refused (cursors here only go forward).
fn parse_fetch(text: &str) -> Result<Statement, SqlError> {
    let w = statement_words(text);
    let skip = w.first().map(String::as_str) == Some("move");
    let mut rest: Vec<&str> = w.iter().skip(1).map(String::as_str).collect();
    if matches!(rest.iter().rev().nth(1), Some(&"from" | &"in")) {
        rest.remove(rest.len() - 2);
    }
    let Some((name, direction)) = rest.split_last() else {
        return Err(SqlError::Syntax(
            "syntax error: expected a cursor name".into(),
        ));
    };
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| SqlError::Syntax(format!("syntax error at or near \"{s}\"")))
    };
    let forward = |n: i64| {
        if n < 0 {
            Err(SqlError::Unsupported(
                "FETCH backward: cursors only go forward (NO SCROLL)".into(),
            ))
        } else {
            Ok(Some(n as u64))
        }
    };
    let count = match direction {
        [] | ["next"] | ["forward"] => Some(1),
        ["all"] | ["forward", "all"] => None,
        ["forward", n] => forward(number(n)?)?,
        [n] if n.parse::<i64>().is_ok() => forward(number(n)?)?,
        [d, ..] => {
            return Err(SqlError::Unsupported(format!(
                "FETCH {}: cursors only go forward (NEXT, n, ALL, FORWARD)",
                d.to_ascii_uppercase()
            )))
        }
    };
    Ok(Statement::Fetch {
        name: (*name).to_string(),
        count,
        skip,
    })
}

/// `EXECUTE name [(value, …)]`.
fn parse_execute(text: &str) -> Result<Statement, SqlError> {
    let t = text.trim().trim_end_matches(';').trim();
    let rest = match t.split_once(char::is_whitespace) {
        Some((first, rest)) if first.eq_ignore_ascii_case("execute") => rest.trim_start(),
        _ if t.eq_ignore_ascii_case("execute") => "",
        _ => return Err(SqlError::Syntax("syntax error: EXECUTE name".into())),
    };
    let (name, args) = match rest.find('(') {
        Some(i) => {
            let inner = rest[i + 1..].trim_end();
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| SqlError::Syntax("syntax error: EXECUTE name (values)".into()))?;
            (&rest[..i], Some(inner.to_string()))
        }
        None => (rest, None),
    };
    let name = statement_words(name)
        .first()
        .cloned()
        .ok_or_else(|| SqlError::Syntax("syntax error: EXECUTE needs a name".into()))?;
    Ok(Statement::ExecutePrepared { name, args })
}

fn parse_truncate(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::TRUNCATE).map_err(syntax)?;
    let _ = p.parse_keyword(Keyword::TABLE);
    let _ = p.parse_keyword(Keyword::ONLY);
    let names = object_names(&mut p)?;
    if p.parse_keyword(Keyword::RESTART) || p.parse_keyword(Keyword::CONTINUE) {
        p.expect_keyword_is(Keyword::IDENTITY).map_err(syntax)?;
    }
    if !p.parse_keyword(Keyword::CASCADE) {
        let _ = p.parse_keyword(Keyword::RESTRICT);
    }
    expect_end(&mut p)?;
    Ok(Statement::Truncate(names))
}

fn parse_drop(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::DROP).map_err(syntax)?;
    let kind = if p.parse_keyword(Keyword::SOURCE) {
        DropKind::Source
    } else if p.parse_keyword(Keyword::TABLE) {
        DropKind::Table
    } else if p.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
        DropKind::MaterializedView
    } else if p.parse_keyword(Keyword::VIEW) {
        DropKind::View
    } else {
        let t = p.peek_token().token;
        return Err(SqlError::Unsupported(format!("DROP {t} is not supported")));
    };
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = object_names(&mut p)?;
    let cascade = if p.parse_keyword(Keyword::CASCADE) {
        true
    } else {
        let _ = p.parse_keyword(Keyword::RESTRICT);
        false
    };
    expect_end(&mut p)?;
    Ok(Statement::Drop(DropStatement {
        kind,
        names,
        if_exists,
        cascade,
    }))
}

/// `ALTER MATERIALIZED VIEW name RECOMPUTE` or `REFRESH MATERIALIZED VIEW
/// [CONCURRENTLY] name [WITH DATA]`.
fn parse_recompute(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    let refresh = if p.parse_keyword(Keyword::ALTER) {
        false
    } else {
        p.expect_keyword_is(Keyword::REFRESH).map_err(syntax)?;
        true
    };
    p.expect_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW])
        .map_err(syntax)?;
    if refresh {
        let _ = p.parse_keyword(Keyword::CONCURRENTLY);
    }
    let name = object_name(&p.parse_object_name(false).map_err(syntax)?)?;
    if refresh {
        if p.parse_keywords(&[Keyword::WITH, Keyword::NO, Keyword::DATA]) {
            return Err(SqlError::Unsupported(
                "REFRESH MATERIALIZED VIEW ... WITH NO DATA: a view always holds its rows".into(),
            ));
        }
        let _ = p.parse_keywords(&[Keyword::WITH, Keyword::DATA]);
    } else {
        match p.next_token().token {
            datafusion::sql::sqlparser::tokenizer::Token::Word(w)
                if w.value.eq_ignore_ascii_case("recompute") => {}
            t => {
                return Err(SqlError::Unsupported(format!(
                    "ALTER MATERIALIZED VIEW ... {t} is not supported (RECOMPUTE is)"
                )))
            }
        }
    }
    expect_end(&mut p)?;
    Ok(Statement::RecomputeView {
        name,
        tag: if refresh {
            "REFRESH MATERIALIZED VIEW"
        } else {
            "ALTER MATERIALIZED VIEW"
        },
    })
}

fn parse_show(text: &str) -> Result<Statement, SqlError> {
    let words = leading_words(text, 4);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["SHOW", "SOURCES"] => Ok(Statement::ShowRelations(RelationKind::Source)),
        ["SHOW", "TABLES"] => Ok(Statement::ShowRelations(RelationKind::Table)),
        ["SHOW", "MATERIALIZED", "VIEWS"] => Ok(Statement::ShowRelations(RelationKind::View)),
        ["SHOW", "ALL"] => Ok(Statement::ShowAll),
        ["SHOW", "CREATE", ..] => {
            let mut p = parser(text)?;
            p.expect_keywords(&[Keyword::SHOW, Keyword::CREATE])
                .map_err(syntax)?;
            let kind = if p.parse_keyword(Keyword::SOURCE) {
                RelationKind::Source
            } else if p.parse_keyword(Keyword::TABLE) {
                RelationKind::Table
            } else if p.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
                RelationKind::View
            } else if p.parse_keyword(Keyword::VIEW) {
                RelationKind::PlainView
            } else {
                return Err(SqlError::Syntax(
                    "expected SHOW CREATE SOURCE | TABLE | MATERIALIZED VIEW | VIEW name".into(),
                ));
            };
            let name = object_name(&p.parse_object_name(false).map_err(syntax)?)?;
            expect_end(&mut p)?;
            Ok(Statement::ShowCreate { kind, name })
        }
        ["SHOW", "TIME", "ZONE"] => Ok(Statement::ShowVariable("timezone".into())),
        ["SHOW", "TRANSACTION", "ISOLATION", "LEVEL"] => {
            Ok(Statement::ShowVariable("transaction_isolation".into()))
        }
        _ => {
            let mut p = parser(text)?;
            p.expect_keyword_is(Keyword::SHOW).map_err(syntax)?;
            let name = p.parse_object_name(false).map_err(syntax)?;
            expect_end(&mut p)?;
            Ok(Statement::ShowVariable(
                name.0
                    .iter()
                    .filter_map(|p| p.as_ident().map(normalize_ident))
                    .collect::<Vec<_>>()
                    .join("."),
            ))
        }
    }
}

/// The words of a statement without a trailing `;`, as identifiers
/// (unquoted ones folded to lower case, as Postgres does).
fn statement_words(text: &str) -> Vec<String> {
    let t = text.trim().trim_end_matches(';');
    t.split_whitespace()
        .map(|w| {
            if w.len() >= 2 && w.starts_with('"') && w.ends_with('"') {
                w[1..w.len() - 1].replace("\"\"", "\"")
            } else {
                w.to_ascii_lowercase()
            }
        })
        .collect()
}

/// What a query string does to a transaction block, read from its text
/// alone (for the status the wire reports): a lone `COMMIT`/`ROLLBACK`
/// ends it whatever happens; `ROLLBACK TO` resumes it.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockEffect {
    Ends,
    Resumes,
}

pub fn block_effect(text: &str) -> Option<BlockEffect> {
    let statements = split_statements(text);
    let [one] = statements.as_slice() else {
        return None;
    };
    let w = statement_words(one);
    match w.first().map(String::as_str) {
        Some("rollback") if rollback_to(one).is_some() => Some(BlockEffect::Resumes),
        Some("commit" | "end" | "rollback" | "abort") => Some(BlockEffect::Ends),
        _ => None,
    }
}

/// `SAVEPOINT name` / `RELEASE [SAVEPOINT] name`: the name.
fn savepoint_name(text: &str, skip: usize) -> Result<String, SqlError> {
    let w = statement_words(text);
    let rest: Vec<&String> = w
        .iter()
        .skip(skip)
        .skip_while(|w| w.as_str() == "savepoint")
        .collect();
    match rest.as_slice() {
        [name] => Ok((*name).clone()),
        _ => Err(SqlError::Syntax(format!(
            "syntax error: expected {} name",
            w.first()
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_default()
        ))),
    }
}

/// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`: the name.
fn rollback_to(text: &str) -> Option<String> {
    let w = statement_words(text);
    let mut it = w.iter().skip(1).peekable();
    if matches!(it.peek().map(|s| s.as_str()), Some("work" | "transaction")) {
        it.next();
    }
    if it.next().map(String::as_str) != Some("to") {
        return None;
    }
    if it.peek().map(|s| s.as_str()) == Some("savepoint") {
        it.next();
    }
    let name = it.next()?.clone();
    it.next().is_none().then_some(name)
}

fn parse_set(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::SET).map_err(syntax)?;
    let _ = p.parse_one_of_keywords(&[Keyword::SESSION, Keyword::LOCAL]);
    if p.parse_keywords(&[Keyword::TIME, Keyword::ZONE]) {
        let value = set_value(&mut p)?;
        expect_end(&mut p)?;
        return Ok(Statement::Set {
            name: "timezone".into(),
            value,
        });
    }
    if p.parse_keyword(Keyword::NAMES) {
        let value = set_value(&mut p)?;
        expect_end(&mut p)?;
        return Ok(Statement::Set {
            name: "client_encoding".into(),
            value,
        });
    }
    // (SESSION was taken above as the scope of SET)
    if p.parse_keyword(Keyword::CHARACTERISTICS) || p.parse_keyword(Keyword::TRANSACTION) {
        // SET [SESSION CHARACTERISTICS AS] TRANSACTION ...: accepted, every
        // block runs at the one isolation level Freshet has (snapshot
        // isolation; docs/sql.md).
        return Ok(Statement::Discard("SET".into()));
    }
    let name = p
        .parse_object_name(false)
        .map_err(syntax)?
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(normalize_ident))
        .collect::<Vec<_>>()
        .join(".");
    if !p.consume_token(&Token::Eq) && !p.parse_keyword(Keyword::TO) {
        return Err(SqlError::Syntax(format!(
            "syntax error in SET {name}: expected TO or ="
        )));
    }
    let value = set_value(&mut p)?;
    expect_end(&mut p)?;
    Ok(Statement::Set { name, value })
}

/// A SET value: a comma-separated list of words, numbers or strings, or DEFAULT.
fn set_value(p: &mut Parser) -> Result<Option<String>, SqlError> {
    if p.parse_keyword(Keyword::DEFAULT) || p.parse_keyword(Keyword::LOCAL) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    loop {
        let t = p.next_token();
        let s = match t.token {
            Token::SingleQuotedString(s) => s,
            Token::Word(w) => w.value,
            Token::Number(n, _) => n,
            Token::Minus => match p.next_token().token {
                Token::Number(n, _) => format!("-{n}"),
                other => return Err(SqlError::Syntax(format!("invalid SET value near {other}"))),
            },
            other => return Err(SqlError::Syntax(format!("invalid SET value near {other}"))),
        };
        parts.push(s);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    Ok(Some(parts.join(", ")))
}

fn parse_reset(text: &str) -> Result<Statement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::RESET).map_err(syntax)?;
    if p.parse_keyword(Keyword::ALL) {
        expect_end(&mut p)?;
        return Ok(Statement::Reset(None));
    }
    let name = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    expect_end(&mut p)?;
    Ok(Statement::Reset(Some(name)))
}

/// The tokens of `text`, each with the byte range of the source it came
/// from, so a token-level rewrite can copy what it does not change verbatim
/// (a token's `Display` is not its source: `'it''s'` prints as `'it's'`).
/// `None` when the text does not tokenize.
pub(crate) fn tokens_with_ranges(text: &str) -> Option<Vec<(Token, std::ops::Range<usize>)>> {
    let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    // token starts as byte offsets: walk the text once, tracking the
    // tokenizer's (line, column) — columns count characters
    let mut starts = Vec::with_capacity(tokens.len());
    let (mut line, mut column) = (1u64, 1u64);
    let mut chars = text.char_indices().peekable();
    for t in &tokens {
        let want = (t.span.start.line, t.span.start.column);
        while (line, column) < want {
            let Some((_, c)) = chars.next() else { break };
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        starts.push(chars.peek().map_or(text.len(), |(i, _)| *i));
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    Some(
        tokens
            .into_iter()
            .zip(starts.iter().copied().zip(ends))
            .map(|(t, (a, b))| (t.token, a..b))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_boolean_options_read_on_and_off() {
        use super::copy_boolean_options as c;
        assert_eq!(
            c("copy t from stdin with (freeze on)"),
            "copy t from stdin with (freeze true)"
        );
        assert_eq!(
            c("COPY t TO STDOUT (FORMAT csv, HEADER off, DELIMITER ';')"),
            "COPY t TO STDOUT (FORMAT csv, HEADER false, DELIMITER ';')"
        );
        // only after STDIN / STDOUT, only after those options
        assert_eq!(
            c("COPY (SELECT 'freeze on') TO STDOUT (FORMAT csv)"),
            "COPY (SELECT 'freeze on') TO STDOUT (FORMAT csv)"
        );
        assert_eq!(c("copy t from stdin"), "copy t from stdin");
        assert!(matches!(
            super::SqlParser::new()
                .parse_one("COPY t FROM STDIN WITH (FREEZE on, HEADER off, FORMAT csv)"),
            Ok(super::Statement::Sql(_))
        ));
    }

    #[test]
    fn nul_escapes() {
        for t in [
            r"E'\0'",
            r"E'a\000b'",
            r"E'\x00'",
            r"E'\u0000'",
            r"E'\U00000000'",
        ] {
            assert!(super::has_nul_escape(t), "{t}");
        }
        for t in [r"E'\t'", r"E'\101'", r"E'\x41'", r"E'\u0041'", r"'a'"] {
            assert!(!super::has_nul_escape(t), "{t}");
        }
    }

    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let s = split_statements(
            "SELECT 'a;b'; SELECT \"x;\" FROM t -- c;\n; /* ; */ SELECT $$;$$; SELECT $1;",
        );
        assert_eq!(
            s,
            vec![
                "SELECT 'a;b'",
                "SELECT \"x;\" FROM t -- c;",
                "/* ; */ SELECT $$;$$",
                "SELECT $1"
            ]
        );
        assert!(split_statements("  ; ;").is_empty());
        assert!(split_statements("-- only a comment").is_empty());
    }

    #[test]
    fn a_long_view_is_recognized_whatever_its_literals() {
        // the 200-byte prefix used to classify statements ends inside the
        // quoted literal here
        let sql = format!(
            "CREATE MATERIALIZED VIEW v AS SELECT x FROM t WHERE s = '{}'",
            "w ".repeat(100)
        );
        let st = SqlParser::new().parse_one(&sql).unwrap();
        assert!(matches!(st, Statement::CreateView(_)), "{st:?}");
    }

    #[test]
    fn create_source_with_watermark_and_options() {
        let p = SqlParser::new();
        let s = p
            .parse_one(
                "CREATE SOURCE IF NOT EXISTS Bids (auction BIGINT, date_time TIMESTAMP NOT NULL, \
                 WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds') WITH (connector = 'kafka')",
            )
            .unwrap();
        let Statement::CreateRelation(c) = s else {
            panic!("{s:?}")
        };
        assert_eq!(c.name, "bids");
        assert!(c.if_not_exists);
        assert_eq!(c.columns.len(), 2);
        assert!(c.columns[1].not_null);
        assert_eq!(
            c.watermark,
            Some((
                "date_time".to_string(),
                "date_time - INTERVAL '4 seconds'".to_string()
            ))
        );
        assert_eq!(
            c.connector.options.get("connector").map(String::as_str),
            Some("kafka")
        );
        let Statement::CreateRelation(c) = p
            .parse_one(
                "CREATE SOURCE s (a INT) INCLUDE partition AS p INCLUDE header 'h' \
                 WITH (connector = 'kafka', properties.bootstrap.server = '127.0.0.1:9092', n = 5) \
                 FORMAT PLAIN ENCODE CSV (delimiter = ';')",
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            c.connector
                .options
                .get("properties.bootstrap.server")
                .map(String::as_str),
            Some("127.0.0.1:9092")
        );
        assert_eq!(c.connector.options.get("n").map(String::as_str), Some("5"));
        assert_eq!(c.connector.include.len(), 2);
        assert_eq!(c.connector.include[0].2.as_deref(), Some("p"));
        assert_eq!(c.connector.include[1].1.as_deref(), Some("h"));
        // (the list form: items after commas)
        let Statement::CreateRelation(l) = p
            .parse_one(
                "CREATE SOURCE s (a INT) INCLUDE partition AS p, offset AS o, timestamp \
                 WITH (connector = 'kafka')",
            )
            .unwrap()
        else {
            panic!()
        };
        let kinds: Vec<&str> = l.connector.include.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(kinds, ["partition", "offset", "timestamp"]);
        assert_eq!(l.connector.include[1].2.as_deref(), Some("o"));
        let (f, e, o) = c.connector.format.clone().unwrap();
        assert_eq!((f.as_str(), e.as_str()), ("plain", "csv"));
        assert_eq!(o.get("delimiter").map(String::as_str), Some(";"));
    }

    #[test]
    fn create_table_primary_keys() {
        let p = SqlParser::new();
        let Statement::CreateRelation(c) = p
            .parse_one("CREATE TABLE a (id BIGINT PRIMARY KEY, x INT)")
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.primary_key, vec!["id"]);
        let Statement::CreateRelation(c) = p
            .parse_one("create table a (k1 int, k2 text, v int, primary key (k1, k2))")
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.primary_key, vec!["k1", "k2"]);
        assert!(p.parse_one("CREATE SOURCE s (id INT PRIMARY KEY)").is_err());
        assert!(p.parse_one("CREATE TABLE t (a INT,").is_err());
    }

    #[test]
    fn savepoint_statements() {
        let p = SqlParser::new();
        let one = |t: &str| p.parse_one(t).unwrap();
        assert!(matches!(one("SAVEPOINT a"), Statement::Savepoint(n) if n == "a"));
        assert!(matches!(one("savepoint \"Mixed\";"), Statement::Savepoint(n) if n == "Mixed"));
        assert!(matches!(one("RELEASE SAVEPOINT B"), Statement::Release(n) if n == "b"));
        assert!(matches!(one("RELEASE b"), Statement::Release(n) if n == "b"));
        assert!(matches!(one("ROLLBACK TO SAVEPOINT a"), Statement::RollbackTo(n) if n == "a"));
        assert!(matches!(one("ROLLBACK WORK TO a"), Statement::RollbackTo(n) if n == "a"));
        assert!(matches!(one("ROLLBACK"), Statement::Rollback));
        assert!(
            matches!(one("TRUNCATE TABLE a, \"B\" RESTART IDENTITY CASCADE"), Statement::Truncate(n) if n == ["a", "B"])
        );
        assert!(matches!(one("truncate t"), Statement::Truncate(n) if n == ["t"]));
        assert!(matches!(
            one("DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1"),
            Statement::Declare { name, hold: true, .. } if name == "c"
        ));
        assert!(matches!(
            one("FETCH FORWARD 100 FROM \"c\""),
            Statement::Fetch { name, count: Some(100), skip: false } if name == "c"
        ));
        assert!(matches!(
            one("FETCH c"),
            Statement::Fetch { count: Some(1), .. }
        ));
        assert!(matches!(
            one("MOVE ALL IN c"),
            Statement::Fetch {
                count: None,
                skip: true,
                ..
            }
        ));
        assert!(p.parse_one("FETCH BACKWARD 1 FROM c").is_err());
        assert!(matches!(one("CLOSE ALL"), Statement::Close(None)));
        assert!(matches!(
            one("PREPARE q (int, text) AS SELECT $1 + 1 AS x"),
            Statement::PrepareAs { name, .. } if name == "q"
        ));
        assert!(matches!(
            one("EXECUTE q (1, 'a,b')"),
            Statement::ExecutePrepared { name, args: Some(a) } if name == "q" && a == "1, 'a,b'"
        ));
        assert!(matches!(
            one("EXECUTE q"),
            Statement::ExecutePrepared { args: None, .. }
        ));
        assert!(matches!(one("DEALLOCATE PREPARE q"), Statement::Deallocate(Some(n)) if n == "q"));
        assert!(matches!(one("DEALLOCATE ALL"), Statement::Deallocate(None)));
        assert!(matches!(one("ROLLBACK TRANSACTION"), Statement::Rollback));
        assert!(p.parse_one("SAVEPOINT").is_err());
        assert!(p.parse_one("SAVEPOINT a b").is_err());
        assert_eq!(block_effect("COMMIT"), Some(BlockEffect::Ends));
        assert_eq!(block_effect(" rollback ;"), Some(BlockEffect::Ends));
        assert_eq!(block_effect("ROLLBACK TO s"), Some(BlockEffect::Resumes));
        assert_eq!(block_effect("SELECT 1"), None);
        assert_eq!(block_effect("COMMIT; BEGIN"), None);
    }

    #[test]
    fn session_statements() {
        let p = SqlParser::new();
        assert!(matches!(
            p.parse_one("SET extra_float_digits = 3").unwrap(),
            Statement::Set { name, value: Some(v) } if name == "extra_float_digits" && v == "3"
        ));
        assert!(matches!(
            p.parse_one("SET TIME ZONE 'UTC'").unwrap(),
            Statement::Set { name, value: Some(v) } if name == "timezone" && v == "UTC"
        ));
        assert!(matches!(
            p.parse_one("set search_path to public, \"$user\"").unwrap(),
            Statement::Set { name, value: Some(v) } if name == "search_path" && v == "public, $user"
        ));
        assert!(matches!(
            p.parse_one("SHOW DateStyle").unwrap(),
            Statement::ShowVariable(n) if n == "datestyle"
        ));
        assert!(matches!(
            p.parse_one("show sources").unwrap(),
            Statement::ShowRelations(RelationKind::Source)
        ));
        assert!(matches!(p.parse_one("BEGIN").unwrap(), Statement::Begin));
        assert!(matches!(
            p.parse_one("DROP SOURCE IF EXISTS a, b CASCADE").unwrap(),
            Statement::Drop(DropStatement {
                kind: DropKind::Source,
                if_exists: true,
                cascade: true,
                ..
            })
        ));
    }
}

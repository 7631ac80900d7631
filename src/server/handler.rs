//! pgwire handlers for one connection: simple and extended query protocol,
//! COPY FROM STDIN, parameter status.

use std::fmt::Debug;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::errors::{error_info, to_pgwire};
use super::text;
use crate::engine::session::{Output, Prepared, Session, REPORTED};
use crate::engine::write::CopyIn;
use crate::engine::{Engine, EngineError};
use crate::ingest::copy::CopyFormatKind;
use crate::types::SQL_TYPE_KEY;

/// Everything one connection needs.
pub struct Conn {
    me: Weak<Conn>,
    pub(super) session: tokio::sync::Mutex<Session>,
    /// The default database's engine (roles; the list of databases).
    engine: Arc<Engine>,
    copy: parking_lot::Mutex<Option<Box<CopyIn>>>,
    manager: Arc<ConnectionManager>,
    templates: Arc<super::Templates>,
    /// This connection's claim on its database (taken at start-up).
    ticket: parking_lot::Mutex<Option<crate::database::Ticket>>,
}

impl Conn {
    pub fn new(
        session: Session,
        engine: Arc<Engine>,
        manager: Arc<ConnectionManager>,
        templates: Arc<super::Templates>,
    ) -> Arc<Conn> {
        Arc::new_cyclic(|me| Conn {
            me: me.clone(),
            session: tokio::sync::Mutex::new(session),
            engine,
            copy: parking_lot::Mutex::new(None),
            manager,
            templates,
            ticket: parking_lot::Mutex::new(None),
        })
    }
}

impl Conn {
    /// The default database's engine: it knows the roles and the
    /// databases.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Binds the connection to database `database` as role `user` (the
    /// end of start-up): 3D000 for a database that does not exist, 55000
    /// or 53300 when it takes no more connections.
    /// `settings` are the start-up packet's run-time parameters (and those
    /// of its `options`), applied as `SET` would; the applied ones come
    /// back with their canonical names.
    pub(super) async fn enter(
        &self,
        database: &str,
        user: &str,
        settings: &[(String, String)],
    ) -> Result<Vec<(String, String)>, EngineError> {
        let home = self.engine.clone();
        let superuser = home.access().roles.get(user).is_some_and(|r| r.superuser);
        let (engine, ticket) = home.databases().connect(database, superuser, &home).await?;
        let mut session = self.session.lock().await;
        if !Arc::ptr_eq(session.engine(), &engine) {
            *session = self.templates.session(&engine)?;
        }
        *self.ticket.lock() = Some(ticket);
        session.login(user);
        let mut applied = Vec::with_capacity(settings.len());
        for (k, v) in settings {
            applied.push(session.set_parameter(k, Some(v))?);
        }
        Ok(applied)
    }

    /// The start-up handler of this connection.
    pub(super) fn startup_handler(
        self: &Arc<Self>,
        method: super::startup::AuthMethod,
    ) -> Arc<super::startup::Login> {
        Arc::new(super::startup::Login::new(
            self,
            method,
            self.manager.clone(),
        ))
    }

    pub(super) fn cancel_handler(&self) -> Arc<DefaultCancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.manager.clone()))
    }
}

pub(super) struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(peer = %client.socket_addr(), error = %error, "statement failed");
    }
}

/// Field descriptions for a result schema; jsonb and varchar columns are
/// reported as such (their values are Arrow strings, as text's are).
fn fields(
    schema: &SchemaRef,
    format: &Format,
    opts: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    let mut out = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, Some(opts))?;
    for (i, f) in schema.fields().iter().enumerate() {
        let name = crate::sql::rewrite::display_name(f.name());
        let declared = declared_type(f);
        if declared.is_some() || name.len() != f.name().len() {
            let fi = &out[i];
            let ty = declared.unwrap_or_else(|| fi.datatype().clone());
            out[i] = FieldInfo::new(
                name.to_string(),
                fi.table_id(),
                fi.column_id(),
                ty,
                fi.format(),
            )
            .with_format_options(fi.format_options().clone());
        }
    }
    Ok(out)
}

/// The type a string column was declared with, where it is not text.
fn declared_type(f: &datafusion::arrow::datatypes::Field) -> Option<Type> {
    if f.data_type() != &DataType::Utf8 {
        return None;
    }
    crate::types::pg_type_of(f).filter(|t| *t != Type::TEXT)
}

fn is_jsonb(f: &datafusion::arrow::datatypes::Field) -> bool {
    f.metadata().get(SQL_TYPE_KEY).map(String::as_str) == Some("jsonb")
        && f.data_type() == &DataType::Utf8
}

/// Which columns need rendering before the row encoder sees them.
fn renders(schema: &SchemaRef, fields: &[FieldInfo]) -> Vec<(usize, text::Render)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let binary = fields[i].format().is_binary();
            if binary && is_jsonb(f) {
                Some((i, text::Render::JsonbBinary))
            } else if binary
                && f.data_type()
                    == &DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
            {
                Some((i, text::Render::IntervalBinary))
            } else if binary && matches!(f.data_type(), DataType::Decimal128(_, _)) {
                Some((i, text::Render::NumericBinary))
            } else if !binary && text::needs_text(f.data_type()) {
                Some((i, text::Render::PgText))
            } else {
                None
            }
        })
        .collect()
}

/// A result's rows encoded for the wire in the fields' formats.
fn data_rows(
    schema: &SchemaRef,
    fields: Arc<Vec<FieldInfo>>,
    stream: SendableRecordBatchStream,
    zone: Option<chrono_tz::Tz>,
) -> impl futures::Stream<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + 'static {
    let text_cols = renders(schema, &fields);
    stream
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch
                .map_err(EngineError::DataFusion)
                .and_then(|b| text::render(&b, &text_cols, zone).map_err(EngineError::from))
            {
                Ok(b) => arrow_pg::datatypes::encode_recordbatch(fields.clone(), b),
                Err(e) => Box::new(std::iter::once(Err(to_pgwire(&e)))),
            };
            stream::iter(rows)
        })
        .flatten()
}

/// A statement's rows that a CancelRequest stops (57014), also while they
/// stream to the client, which is where a query's work happens: pgwire's
/// own cancel covers only the call that starts the statement. Dropping the
/// stream stops the query's execution.
async fn cancellable<C: ClientInfo>(
    client: &C,
    stream: datafusion::execution::SendableRecordBatchStream,
) -> datafusion::execution::SendableRecordBatchStream {
    let Some(handle) = client
        .session_extensions()
        .get::<Arc<pgwire::api::ConnectionHandle>>()
    else {
        return stream;
    };
    let schema = stream.schema();
    // Armed when the rows are first read, after the statement's call
    // returned: arming replaces the handle's sender, and pgwire reads the
    // drop of the one it armed for that call as a cancel.
    let mut rows = Some(stream);
    // (the receiver travels in a tuple: a future yielding a future reads as
    // a mistake)
    let armed = stream::once(async move { (handle.start_query().await,) }).flat_map(move |(rx,)| {
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = fired.clone();
        let until = async move {
            if rx.await.is_ok() {
                fired.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        };
        let inner: futures::stream::BoxStream<'static, _> = match rows.take() {
            Some(r) => r.take_until(until).boxed(),
            None => stream::empty().boxed(),
        };
        inner.chain(stream::iter(std::iter::from_fn(move || {
            seen.swap(false, std::sync::atomic::Ordering::SeqCst)
                .then(|| {
                    Err(datafusion::error::DataFusionError::External(Box::new(
                        EngineError::StatementCanceled,
                    )))
                })
        })))
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, armed))
}

/// The session's TimeZone, for timestamptz text (`None`: UTC).
fn session_zone<C: ClientInfo>(client: &C) -> Option<chrono_tz::Tz> {
    ["timezone", "TimeZone"]
        .iter()
        .find_map(|k| client.metadata().get(*k))
        .and_then(|z| text::zone(z).ok())
        .flatten()
}

fn format_options<C: ClientInfo>(client: &C) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

trait FormatExt {
    fn is_binary(&self) -> bool;
}

impl FormatExt for pgwire::api::results::FieldFormat {
    fn is_binary(&self) -> bool {
        matches!(self, pgwire::api::results::FieldFormat::Binary)
    }
}

impl Conn {
    /// Rows answered with a command tag other than `SELECT`.
    async fn rows_tagged<C>(
        &self,
        client: &mut C,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        format: &Format,
        tag: &str,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Response::Query(mut q) =
            Box::pin(self.respond(client, Output::Rows { schema, stream }, format)).await?
        else {
            return Err(to_pgwire(&EngineError::Internal(
                "rows without a result".into(),
            )));
        };
        q.set_command_tag(tag);
        Ok(Response::Query(q))
    }

    /// Turns an engine output into a pgwire response.
    async fn respond<C>(
        &self,
        client: &mut C,
        out: Output,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(match out {
            Output::Fetched { schema, stream } => {
                self.rows_tagged(client, schema, stream, format, "FETCH")
                    .await?
            }
            Output::Returned {
                tag,
                schema,
                stream,
            } => {
                // (`INSERT 0 n`: the OID field PostgreSQL keeps at 0)
                let tag = if tag == "INSERT" { "INSERT 0" } else { tag };
                self.rows_tagged(client, schema, stream, format, tag)
                    .await?
            }
            Output::Rows { schema, stream } => {
                let stream = cancellable(client, stream).await;
                let fields = Arc::new(fields(&schema, format, format_options(client))?);
                let rows = data_rows(&schema, fields.clone(), stream, session_zone(client));
                Response::Query(QueryResponse::new(fields, rows))
            }
            Output::CopyOut {
                schema,
                stream,
                format: copy,
            } => {
                // (no `cancellable`: the rows are sent within the call
                // that started the statement, which pgwire's cancel covers)
                let wire = if copy.kind == CopyFormatKind::Binary {
                    Format::UnifiedBinary
                } else {
                    Format::UnifiedText
                };
                let fields = Arc::new(fields(&schema, &wire, format_options(client))?);
                let rows = data_rows(&schema, fields.clone(), stream, session_zone(client));
                // (sent here rather than as pgwire's CopyOut response, which
                // counts every CopyData message, the header's too, for the
                // `COPY n` tag)
                let n = super::copy_out::send(client, &fields, rows, &copy).await?;
                Response::Execution(Tag::new("COPY").with_rows(n))
            }
            Output::Command { tag, rows } => {
                let mut t = Tag::new(tag);
                if tag == "INSERT" {
                    t = t.with_oid(0);
                }
                if let Some(n) = rows {
                    t = t.with_rows(n);
                }
                Response::Execution(t)
            }
            Output::CopyIn(c) => {
                let columns = c.columns;
                let format = i8::from(c.binary);
                *self.copy.lock() = Some(c);
                Response::CopyIn(CopyResponse::new(format, columns, stream::empty()))
            }
            Output::Set { name, value, tag } => {
                client
                    .metadata_mut()
                    .insert(name.to_ascii_lowercase(), value.clone());
                if REPORTED.contains(&name.as_str()) {
                    client
                        .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name, value,
                        )))
                        .await?;
                }
                Response::Execution(Tag::new(tag))
            }
            Output::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Output::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            Output::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    /// pgwire derives the transaction status it reports from the one
    /// before the query and the responses; it is set first to what the
    /// session's block says, so a COMMIT that fails still ends the block
    /// and a ROLLBACK TO leaves a failed one.
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let status = {
            let session = self.session.lock().await;
            let now = session.block_status();
            match crate::sql::parser::block_effect(&query.query) {
                Some(crate::sql::parser::BlockEffect::Ends) => 'I',
                Some(crate::sql::parser::BlockEffect::Resumes) if now != 'I' => 'T',
                _ => now,
            }
        };
        client.set_transaction_status(wire_status(status));
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(e) = rejection(query) {
            return Ok(vec![Response::Error(Box::new(error_info(&e)))]);
        }
        let mut session = self.session.lock().await;
        let texts = crate::sql::parser::split_statements(query);
        let mut responses = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let last = i + 1 == texts.len();
            let deadline = session
                .params
                .statement_timeout()
                .map(|t| std::time::Instant::now() + t);
            let result = crate::engine::DEADLINE
                .scope(deadline, async {
                    let stmt = session.parse_one(text)?;
                    let out = match session.prepare(stmt).await {
                        Ok(p) => session.execute(&p, &[]).await?,
                        Err(e) => return Err(e),
                    };
                    // A statement's rows are taken before the next one
                    // runs: an error while producing them must stop the
                    // statements after it, as in Postgres.
                    match out {
                        Output::Rows { schema, stream } if !last => {
                            let batches: Vec<_> =
                                futures::TryStreamExt::try_collect(stream).await?;
                            let stream =
                                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                                    schema.clone(),
                                    stream::iter(batches.into_iter().map(Ok)),
                                );
                            Ok(Output::Rows {
                                schema,
                                stream: Box::pin(stream),
                            })
                        }
                        other => Ok(other),
                    }
                })
                .await;
            match result {
                Ok(out) => {
                    let copy = matches!(out, Output::CopyIn(_));
                    let out = watch(out, session.block_failure());
                    responses.push(self.respond(client, out, &Format::UnifiedText).await?);
                    if copy {
                        break;
                    }
                }
                Err(e) => {
                    session.fail_block();
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Rows that fail while they stream fail the open transaction block.
fn watch(out: Output, failure: Option<Arc<std::sync::atomic::AtomicBool>>) -> Output {
    match (out, failure) {
        (Output::Rows { schema, stream }, Some(flag)) => {
            let stream = stream.inspect(move |r| {
                if r.is_err() {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
            Output::Rows {
                schema: schema.clone(),
                stream: Box::pin(
                    datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                        schema, stream,
                    ),
                ),
            }
        }
        (out, _) => out,
    }
}

/// A Describe's answer whose NoData is decided by the statement having no
/// result, not by its having no fields.
struct Described {
    parameters: Option<Vec<Type>>,
    fields: Vec<FieldInfo>,
    no_data: bool,
}

impl pgwire::api::results::DescribeResponse for Described {
    fn parameters(&self) -> Option<&[Type]> {
        self.parameters.as_deref()
    }

    fn fields(&self) -> &[FieldInfo] {
        &self.fields
    }

    fn no_data() -> Self {
        Described {
            parameters: None,
            fields: vec![],
            no_data: true,
        }
    }

    fn is_no_data(&self) -> bool {
        self.no_data
    }
}

fn wire_status(c: char) -> pgwire::messages::response::TransactionStatus {
    use pgwire::messages::response::TransactionStatus;
    match c {
        'T' => TransactionStatus::Transaction,
        'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    }
}

/// The error of a message the guard refused (see `guard`).
fn rejection(text: &str) -> Option<EngineError> {
    let (code, message) = super::guard::rejected(text)?;
    let message = message.to_string();
    Some(match code {
        "22021" => EngineError::CharacterNotInRepertoire(message),
        _ => EngineError::ProtocolViolation(message),
    })
}

/// Parses and plans statements for the extended protocol.
pub struct Planner(Weak<Conn>);

impl Planner {
    fn conn(&self) -> PgWireResult<Arc<Conn>> {
        self.0
            .upgrade()
            .ok_or_else(|| to_pgwire(&EngineError::ShuttingDown))
    }
}

/// A prepared statement as pgwire stores it.
pub type Stmt = Arc<Prepared>;

/// A Bind's parameter values. arrow-pg decodes each by the client's type,
/// else the planner's; a NULL with neither (`$1::varchar` bound to NULL
/// with type 0, as psycopg 3 sends None) it would leave out, shifting
/// every later parameter one place: such NULLs are declared text (their
/// bytes are never read), which decodes them as an untyped NULL.
fn decode_parameters(
    portal: &Portal<Stmt>,
    inferred: &[Option<&DataType>],
) -> PgWireResult<Vec<ScalarValue>> {
    let types = &portal.statement.parameter_types;
    let untyped_nulls: Vec<usize> = portal
        .parameters
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.is_none()
                && matches!(types.get(*i), None | Some(None) | Some(Some(Type::UNKNOWN)))
                && inferred.get(*i).copied().flatten().is_none()
        })
        .map(|(i, _)| i)
        .collect();
    let values = if untyped_nulls.is_empty() {
        arrow_pg::datatypes::df::deserialize_parameters(portal, inferred)?
    } else {
        let mut types = types.clone();
        types.resize(types.len().max(portal.parameters.len()), None);
        for &i in &untyped_nulls {
            types[i] = Some(Type::TEXT);
        }
        let mut retyped = Portal::new_cursor(
            portal.name.clone(),
            Arc::new(pgwire::api::stmt::StoredStatement::new(
                portal.statement.id.clone(),
                portal.statement.statement.clone(),
                types,
            )),
        );
        retyped.parameter_format = portal.parameter_format.clone();
        retyped.parameters = portal.parameters.clone();
        arrow_pg::datatypes::df::deserialize_parameters(&retyped, inferred)?
    };
    match values {
        datafusion::common::ParamValues::List(v) => {
            Ok(v.into_iter().map(|s| s.value().clone()).collect())
        }
        datafusion::common::ParamValues::Map(_) => Err(to_pgwire(&EngineError::ProtocolViolation(
            "named parameters are not supported".into(),
        ))),
    }
}

#[async_trait]
impl QueryParser for Planner {
    type Statement = Stmt;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Stmt>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if let Some(e) = rejection(sql) {
            return Err(to_pgwire(&e));
        }
        let conn = self.conn()?;
        let session = conn.session.lock().await;
        let fail = |e: EngineError| {
            session.fail_block();
            to_pgwire(&e)
        };
        let mut stmts = session.parse(sql).map_err(fail)?;
        if stmts.len() > 1 {
            return Err(to_pgwire(&EngineError::SyntaxError(
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let Some(stmt) = stmts.pop() else {
            return Ok(None);
        };
        let mut p = session.prepare(stmt).await.map_err(fail)?;
        // Types the client declared fill what planning left open.
        if p.param_types.len() < types.len() {
            p.param_types.resize(types.len(), None);
        }
        for (i, t) in types.iter().enumerate() {
            if p.param_types[i].is_none() {
                p.param_types[i] = t.as_ref().and_then(pg_to_arrow);
            }
        }
        Ok(Some(Arc::new(p)))
    }

    fn get_parameter_types(&self, stmt: &Stmt) -> PgWireResult<Vec<Type>> {
        stmt.param_types
            .iter()
            .map(|t| match t {
                Some(t) => arrow_pg::datatypes::into_pg_type(t),
                None => Ok(Type::TEXT),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Stmt,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.schema {
            Some(s) => fields(
                s,
                format.unwrap_or(&Format::UnifiedText),
                Arc::new(FormatOptions::default()),
            ),
            None => Ok(vec![]),
        }
    }
}

fn pg_to_arrow(t: &Type) -> Option<DataType> {
    use datafusion::arrow::datatypes::{IntervalUnit, TimeUnit};
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => {
            DataType::Utf8
        }
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::NUMERIC => DataType::Decimal128(38, 10),
        _ => return None,
    })
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = Stmt;
    type QueryParser = Planner;

    fn query_parser(&self) -> Arc<Planner> {
        Arc::new(Planner(self.me.clone()))
    }

    /// As pgwire's, but a statement without a result (INSERT, UPDATE, …
    /// without RETURNING) is described with NoData, as PostgreSQL does —
    /// also when it has parameters (JDBC's `executeBatch` reads an empty
    /// RowDescription as a result set, and counts 0 rows).
    async fn on_describe<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Describe,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::query::send_describe_response;
        use pgwire::api::store::Entry;
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        if message.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_STATEMENT {
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                let d = self.do_describe_statement(client, &stmt).await?;
                let described = Described {
                    parameters: Some(d.parameters),
                    fields: d.fields,
                    no_data: stmt.statement.schema.is_none(),
                };
                return send_describe_response(client, &described).await;
            }
        } else if let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) {
            let d = self.do_describe_portal(client, &portal).await?;
            let described = Described {
                parameters: None,
                fields: d.fields,
                no_data: portal.statement.statement.schema.is_none(),
            };
            return send_describe_response(client, &described).await;
        } else if let Some(schema) = self.session.lock().await.cursor_schema(name).await {
            // a cursor DECLAREd by SQL is a portal too (psycopg 3 describes
            // its server-side cursors so)
            let described = Described {
                parameters: None,
                fields: fields(&schema, &Format::UnifiedText, format_options(client))?,
                no_data: false,
            };
            return send_describe_response(client, &described).await;
        }
        self._on_describe(client, message).await
    }

    /// ReadyForQuery reports the session's block as it is.
    async fn on_sync<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Sync,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let status = self.session.lock().await.block_status();
        client.set_transaction_status(wire_status(status));
        let _ = message;
        client.portal_store().rm_portal(pgwire::api::DEFAULT_NAME);
        client
            .send(PgWireBackendMessage::ReadyForQuery(
                pgwire::messages::response::ReadyForQuery::new(wire_status(status)),
            ))
            .await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Stmt>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Stmt>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        let inferred: Vec<Option<&DataType>> =
            prepared.param_types.iter().map(|t| t.as_ref()).collect();
        let params: Vec<ScalarValue> = if portal.parameter_len() == 0 {
            vec![]
        } else {
            decode_parameters(portal, &inferred)?
        };
        let mut session = self.session.lock().await;
        let deadline = session
            .params
            .statement_timeout()
            .map(|t| std::time::Instant::now() + t);
        let result = crate::engine::DEADLINE
            .scope(deadline, session.execute(&prepared, &params))
            .await;
        match result {
            Ok(out) => {
                let out = watch(out, session.block_failure());
                self.respond(client, out, &portal.result_column_format)
                    .await
            }
            Err(e) => {
                session.fail_block();
                Err(to_pgwire(&e))
            }
        }
    }
}

#[async_trait]
impl CopyHandler for Conn {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(c) = self.copy.lock().as_mut() {
            c.feed(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.copy.lock().take();
        let Some(copy) = copy else {
            return Err(to_pgwire(&EngineError::ProtocolViolation(
                "COPY data without a COPY in progress".into(),
            )));
        };
        let session = self.session.lock().await;
        let result = copy.finish(&session).await;
        if result.is_err() {
            session.fail_block();
        }
        match result {
            Ok(Output::Command { tag, rows }) => {
                let mut t = Tag::new(tag);
                if let Some(n) = rows {
                    t = t.with_rows(n);
                }
                client
                    .send(PgWireBackendMessage::CommandComplete(
                        CommandComplete::from(t),
                    ))
                    .await?;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(to_pgwire(&e)),
        }
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy.lock().take();
        to_pgwire(&EngineError::BadCopyData(format!(
            "COPY from stdin failed: {}",
            fail.message
        )))
    }
}

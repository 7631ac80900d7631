//! The Postgres wire protocol front end.
//!
//! One task per connection runs pgwire's message loop with [`handler`]s
//! bound to that connection's [`Session`]. The server never touches the
//! store or the dataflow: it only talks to the engine through sessions.

pub mod copy_out;
pub mod errors;
pub mod guard;
pub mod handler;
pub mod startup;
pub use crate::pgtext as text;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::ConnectionManager;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::query::session_template;
use crate::engine::session::Session;
use crate::engine::{Engine, EngineError};
use crate::sql::SqlParser;
use handler::Conn;

#[derive(Clone)]
pub struct ServerOptions {
    /// Accept connections from addresses other than loopback (only with
    /// password authentication).
    pub allow_remote: bool,
    /// How clients authenticate.
    pub auth: startup::AuthMethod,
    /// TLS for clients that ask for it (`--tls-cert`, `--tls-key`).
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// How long shutdown waits for running statements.
    pub drain_timeout: Duration,
    /// The longest frontend message accepted; a longer one closes its
    /// connection with 54000.
    pub max_message_bytes: usize,
    /// Connections served at once; one more is refused with 53300.
    pub max_connections: usize,
}

/// The default `--max-message-bytes`: 256 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            allow_remote: false,
            auth: startup::AuthMethod::Trust,
            tls: None,
            drain_timeout: Duration::from_secs(30),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: 100,
        }
    }
}

/// Serves connections until `shutdown` resolves, then stops accepting,
/// lets running statements finish, and flushes the engine.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EngineError> {
    // every session reads the server's connections (pg_stat_activity)
    let activity = Arc::new(crate::catalog::pg_session::Activity::default());
    let parser = Arc::new(SqlParser::new());
    let templates = Arc::new(Templates {
        activity: activity.clone(),
        parser: parser.clone(),
        by_database: parking_lot::Mutex::new(std::collections::HashMap::new()),
    });
    let template = templates.template(&engine)?;
    let mut next_connection: u64 = 0;
    let manager = Arc::new(ConnectionManager::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                // (an IPv4 client of a `[::]` listener arrives as ::ffff:a.b.c.d)
                let ip = peer.ip().to_canonical();
                if !options.allow_remote && !ip.is_loopback() {
                    tracing::warn!(%peer, "refusing a non-loopback connection (start with --allow-remote and --auth scram to accept it)");
                    tokio::spawn(refuse(socket, "28000", format!(
                        "connection from host \"{ip}\" refused: this server accepts loopback clients only (it was started without --allow-remote)"
                    )));
                    continue;
                }
                // (connections that ended count no more, reaped or not)
                while connections.try_join_next().is_some() {}
                if connections.len() >= options.max_connections {
                    tracing::warn!(%peer, max = options.max_connections, "refusing a connection: too many clients");
                    tokio::spawn(refuse(socket, "53300", "sorry, too many clients already".into()));
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let session = Session::new(engine.clone(), &template, parser.clone());
                let conn = Conn::new(session, engine.clone(), manager.clone(), templates.clone());
                let stop = stop_rx.clone();
                next_connection += 1;
                let seen = Seen {
                    id: next_connection,
                    activity: activity.clone(),
                };
                connections.spawn(connection(conn, socket, peer, stop, options.clone(), seen));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!(
        open = connections.len(),
        "shutting down: no new connections; finishing running statements"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "statements still running after the drain timeout; closing their connections"
        );
        connections.abort_all();
    }
    engine.shutdown().await;
    tracing::info!("storage flushed; bye");
    Ok(())
}

/// The session state each database's connections start from (built once
/// per database: it registers the catalog and every function).
pub struct Templates {
    activity: Arc<crate::catalog::pg_session::Activity>,
    parser: Arc<SqlParser>,
    by_database: parking_lot::Mutex<
        std::collections::HashMap<
            u32,
            (std::sync::Weak<Engine>, datafusion::execution::SessionState),
        >,
    >,
}

impl Templates {
    /// The template of `engine`'s database.
    fn template(
        &self,
        engine: &Arc<Engine>,
    ) -> Result<datafusion::execution::SessionState, EngineError> {
        let oid = engine.database_oid();
        let mut by = self.by_database.lock();
        if let Some((e, t)) = by.get(&oid) {
            if e.upgrade().is_some_and(|e| Arc::ptr_eq(&e, engine)) {
                return Ok(t.clone());
            }
        }
        let mut t = session_template(engine)?;
        t.config_mut().set_extension(self.activity.clone());
        // (a dropped database's template goes with it)
        by.retain(|_, (e, _)| e.strong_count() > 0);
        by.insert(oid, (Arc::downgrade(engine), t.clone()));
        Ok(t)
    }

    /// A new session on `engine`'s database.
    pub fn session(&self, engine: &Arc<Engine>) -> Result<Session, EngineError> {
        let t = self.template(engine)?;
        Ok(Session::new(engine.clone(), &t, self.parser.clone()))
    }
}

/// A connection's row of `pg_stat_activity`: removed when it closes.
struct Seen {
    id: u64,
    activity: Arc<crate::catalog::pg_session::Activity>,
}

impl Drop for Seen {
    fn drop(&mut self) {
        self.activity.remove(self.id);
    }
}

async fn connection(
    conn: Arc<Conn>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    options: ServerOptions,
    seen: Seen,
) {
    tracing::debug!(%peer, "connection opened");
    let mut task = tokio::spawn(serve_socket(socket, conn.clone(), options, seen));
    tokio::select! {
        r = &mut task => {
            if let Ok(Err(e)) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            // a block the client left open rolls back
            conn.session.lock().await.end().await;
        }
        _ = stopped(&mut stop) => {
            // Wait for the statement in progress (it holds the session),
            // then close the connection.
            let _session = conn.session.lock().await;
            task.abort();
        }
    }
    tracing::debug!(%peer, "connection closed");
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// One connection's protocol loop: pgwire's, with the frontend messages
/// passing through [`guard::Guard`] before they are decoded.
async fn serve_socket(
    socket: tokio::net::TcpStream,
    conn: Arc<Conn>,
    options: ServerOptions,
    seen: Seen,
) -> std::io::Result<()> {
    use crate::catalog::pg_session::now_us;
    let started = now_us();
    use futures::SinkExt;
    use futures::StreamExt;
    use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
    use pgwire::messages::PgWireFrontendMessage;
    use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
    use tokio_util::codec::{Framed, FramedParts};

    // a client that does not finish starting up in time is dropped
    let startup_timeout = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        s = negotiate_tls::<handler::Stmt>(socket, options.tls.clone()) => s?,
    };
    let Some(framed) = negotiated else {
        return Ok(());
    };
    let old = framed.into_parts();
    let io = guard::Guard::new(
        old.io,
        guard::Phase::Startup,
        options.max_message_bytes,
        &old.read_buf,
    );
    let mut parts = FramedParts::new(io, old.codec);
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let startup = conn.startup_handler(options.auth);
    let cancel = conn.cancel_handler();
    let errors = handler::LogErrors;
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        // a transaction block left idle longer than the session's
        // idle_in_transaction_session_timeout ends the connection (and the
        // block with it), as in PostgreSQL
        let idle_limit = if starting {
            None
        } else {
            let session = conn.session.lock().await;
            let status = session.block_status();
            let (pid, _) = socket.pid_and_secret_key();
            let startup_app = socket.metadata().get("application_name").cloned();
            let addr = socket.socket_addr();
            seen.activity.update(seen.id, |b| {
                if b.pid == 0 {
                    b.pid = pid;
                    b.database = session.engine().database_name();
                    b.datid = session.engine().database_oid();
                    b.client_addr = addr.ip().to_canonical().to_string();
                    b.client_port = i32::from(addr.port());
                    b.backend_start = started;
                }
                b.user = session.user().to_string();
                b.application_name = session
                    .params
                    .get("application_name")
                    .filter(|a| !a.is_empty())
                    .or(startup_app.as_deref())
                    .unwrap_or_default()
                    .to_string();
                let state = match status {
                    'I' => "idle",
                    'T' => "idle in transaction",
                    _ => "idle in transaction (aborted)",
                };
                if b.state != state {
                    b.state = state.to_string();
                    b.state_change = Some(now_us());
                }
                b.xact_start = match status {
                    'I' => None,
                    _ => b.xact_start.or(b.query_start),
                };
            });
            (status != 'I')
                .then(|| session.params.idle_in_transaction_timeout())
                .flatten()
        };
        let msg = if starting {
            tokio::select! {
                _ = &mut startup_timeout => None,
                m = socket.next() => m,
            }
        } else if let Some(limit) = idle_limit {
            tokio::select! {
                m = socket.next() => m,
                _ = tokio::time::sleep(limit) => {
                    tracing::info!("closing a connection idle in a transaction block past its timeout");
                    let info = pgwire::error::ErrorInfo::new(
                        "FATAL".to_string(),
                        "25P03".to_string(),
                        "terminating connection due to idle-in-transaction timeout".to_string(),
                    );
                    let _ = socket
                        .send(pgwire::messages::PgWireBackendMessage::ErrorResponse(info.into()))
                        .await;
                    break;
                }
            }
        } else {
            socket.next().await
        };
        let Some(Ok(msg)) = msg else {
            break;
        };
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        if !starting {
            let text = match &msg {
                PgWireFrontendMessage::Query(q) => Some(q.query.clone()),
                PgWireFrontendMessage::Parse(p) => Some(p.query.clone()),
                _ => None,
            };
            let runs = matches!(
                msg,
                PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Execute(_)
            );
            seen.activity.update(seen.id, |b| {
                if let Some(t) = text {
                    b.query = t;
                }
                if runs {
                    let now = now_us();
                    b.state = "active".into();
                    b.state_change = Some(now);
                    b.query_start = Some(now);
                }
            });
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(e) => e,
            _ => msg.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            msg,
            &mut socket,
            startup.clone(),
            conn.clone(),
            conn.clone(),
            conn.clone(),
            cancel.clone(),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            if starting {
                // start-up failed (no such role, wrong password, …): the
                // ErrorResponse is the last message of the connection
                let info: pgwire::error::ErrorInfo = e.into();
                let _ = socket
                    .send(pgwire::messages::PgWireBackendMessage::ErrorResponse(
                        info.into(),
                    ))
                    .await;
                break;
            }
            process_error(&mut socket, e, extended_query).await?;
        }
    }
    Ok(())
}

/// Answers a connection with a FATAL error and closes it.
async fn refuse(mut socket: tokio::net::TcpStream, code: &'static str, message: String) {
    use tokio::io::AsyncWriteExt;
    let bytes = guard::fatal(code, &message);
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.write_all(&bytes)).await;
    let _ = socket.shutdown().await;
}

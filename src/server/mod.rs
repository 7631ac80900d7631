//! The Postgres wire protocol front end.
//!
//! One task per connection runs pgwire's message loop with [`handler`]s
//! bound to that connection's [`Session`]. The server never touches the
//! store or the dataflow: it only talks to the engine through sessions.

pub mod errors;
pub mod handler;
pub mod text;

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
use handler::{Conn, Handlers};

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Accept connections from addresses other than loopback. There is no
    /// authentication yet, so this is off by default.
    pub allow_remote: bool,
    /// How long shutdown waits for running statements.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            allow_remote: false,
            drain_timeout: Duration::from_secs(30),
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
    let template = session_template(&engine)?;
    let parser = Arc::new(SqlParser::new());
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
                if !options.allow_remote && !peer.ip().is_loopback() {
                    tracing::warn!(%peer, "refusing a non-loopback connection (start with --allow-remote to accept it)");
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let session = Session::new(engine.clone(), &template, parser.clone());
                let conn = Conn::new(session, engine.clone(), manager.clone());
                let stop = stop_rx.clone();
                connections.spawn(connection(conn, socket, peer, stop));
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

async fn connection(
    conn: Arc<Conn>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    tracing::debug!(%peer, "connection opened");
    let mut task = tokio::spawn(pgwire::tokio::process_socket(
        socket,
        None,
        Handlers(conn.clone()),
    ));
    tokio::select! {
        r = &mut task => {
            if let Ok(Err(e)) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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

//! Start-up and authentication of one connection.
//!
//! [`Login`] reads the StartupMessage, finds the role, and either trusts
//! it (`--auth trust`, loopback only) or runs SCRAM-SHA-256 against the
//! role's stored verifier (`--auth scram`). A role that does not exist, may
//! not log in, or fails the exchange is answered with a FATAL
//! ErrorResponse (28000 / 28P01) and the connection is closed. Once the
//! client is in, [`Finish`] does what every Postgres server does next
//! (AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery) and
//! binds the session to the role.

use std::fmt::Debug;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::{
    protocol_negotiation, save_startup_parameters_to_metadata, StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, ParameterStatus, Startup};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::handler::Conn;
use crate::auth::scram::{self, ScramError, Verifier};

/// How clients prove who they are (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Any existing role that may log in, without a password. Only for
    /// loopback clients.
    Trust,
    /// SCRAM-SHA-256 against the role's password.
    Scram,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trust" => Ok(AuthMethod::Trust),
            "scram" | "scram-sha-256" => Ok(AuthMethod::Scram),
            other => Err(format!(
                "unknown authentication method {other:?}: use trust or scram"
            )),
        }
    }
}

enum State {
    /// Waiting for the StartupMessage.
    Start,
    /// AuthenticationSASL sent; waiting for the client's first message.
    SaslInitial {
        startup: Startup,
        user: String,
    },
    /// The server's first message sent; waiting for the client's proof.
    SaslFinal {
        startup: Startup,
        user: String,
        exchange: scram::Exchange,
    },
    Done,
}

/// The start-up handler of one connection.
pub struct Login {
    conn: Weak<Conn>,
    method: AuthMethod,
    finish: Arc<Finish>,
    state: parking_lot::Mutex<State>,
}

impl Login {
    pub fn new(conn: &Arc<Conn>, method: AuthMethod, manager: Arc<ConnectionManager>) -> Login {
        Login {
            conn: Arc::downgrade(conn),
            method,
            finish: Arc::new(Finish {
                conn: Arc::downgrade(conn),
                manager,
            }),
            state: parking_lot::Mutex::new(State::Start),
        }
    }
}

/// A FATAL error that ends the start-up.
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

fn malformed(e: ScramError, user: &str) -> PgWireError {
    match e {
        ScramError::Failed => password_failed(user),
        ScramError::Malformed(m) => fatal("08P01", format!("malformed SCRAM message: {m}")),
    }
}

impl Login {
    fn engine(&self) -> PgWireResult<Arc<crate::engine::Engine>> {
        self.conn
            .upgrade()
            .map(|c| c.engine().clone())
            .ok_or_else(|| fatal("57P01", "the server is shutting down"))
    }

    /// The role's stored verifier, or a mock one for a role that does not
    /// exist, may not log in or has no password: the exchange then runs to
    /// its end and fails as a wrong password would, so a client learns
    /// nothing about which roles exist.
    fn verifier(&self, user: &str) -> PgWireResult<(Verifier, bool)> {
        let access = self.engine()?.access();
        match access.roles.get(user).and_then(|r| r.verifier()) {
            Some(v) => Ok((v, false)),
            None => Ok((Verifier::mock(user), true)),
        }
    }

    /// Checks that `user` exists and may log in (after a successful
    /// exchange, or at once under trust).
    fn admit(&self, user: &str) -> PgWireResult<()> {
        let access = self.engine()?.access();
        match access.roles.get(user) {
            None => Err(fatal("28000", format!("role \"{user}\" does not exist"))),
            Some(r) if !r.login => Err(fatal(
                "28000",
                format!("role \"{user}\" is not permitted to log in"),
            )),
            Some(_) => Ok(()),
        }
    }

    async fn finish<C>(&self, client: &mut C, startup: Startup, user: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.admit(user)?;
        if let Some(conn) = self.conn.upgrade() {
            // (PostgreSQL: the database defaults to the user's name)
            let database = client
                .metadata()
                .get("database")
                .filter(|d| !d.is_empty())
                .cloned()
                .unwrap_or_else(|| user.to_string());
            let settings = startup_settings(client.metadata())?;
            match conn.enter(&database, user, &settings).await {
                Ok(applied) => {
                    // (what rendering reads: the canonical, lower-cased names)
                    for (k, v) in applied {
                        client.metadata_mut().insert(k.to_ascii_lowercase(), v);
                    }
                }
                Err(e) => {
                    let mut info = super::errors::error_info(&e);
                    info.severity = "FATAL".into();
                    return Err(PgWireError::UserError(Box::new(info)));
                }
            }
        }
        *self.state.lock() = State::Done;
        self.finish
            .on_startup(client, PgWireFrontendMessage::Startup(startup))
            .await
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = std::mem::replace(&mut *self.state.lock(), State::Done);
        match (state, message) {
            (State::Start, PgWireFrontendMessage::Startup(startup)) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        fatal(
                            "28000",
                            "no PostgreSQL user name specified in startup packet",
                        )
                    })?;
                match self.method {
                    AuthMethod::Trust => self.finish(client, startup, &user).await,
                    AuthMethod::Scram => {
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                        client
                            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                                vec![scram::MECHANISM.to_string()],
                            )))
                            .await?;
                        *self.state.lock() = State::SaslInitial { startup, user };
                        Ok(())
                    }
                }
            }
            (
                State::SaslInitial { startup, user },
                PgWireFrontendMessage::PasswordMessageFamily(m),
            ) => {
                let first = m.into_sasl_initial_response()?;
                if first.auth_method != scram::MECHANISM {
                    return Err(fatal(
                        "28000",
                        format!(
                            "client selected an invalid SASL authentication mechanism: {}",
                            first.auth_method
                        ),
                    ));
                }
                let data = first.data.unwrap_or_default();
                let (verifier, mock) = self.verifier(&user)?;
                let (exchange, server_first) =
                    scram::client_first(verifier, mock, &data).map_err(|e| malformed(e, &user))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(Bytes::from(server_first.into_bytes())),
                    ))
                    .await?;
                *self.state.lock() = State::SaslFinal {
                    startup,
                    user,
                    exchange,
                };
                Ok(())
            }
            (
                State::SaslFinal {
                    startup,
                    user,
                    exchange,
                },
                PgWireFrontendMessage::PasswordMessageFamily(m),
            ) => {
                let last = m.into_sasl_response()?;
                let server_final = exchange
                    .client_final(&last.data)
                    .map_err(|e| malformed(e, &user))?;
                client
                    .feed(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(Bytes::from(server_final.into_bytes())),
                    ))
                    .await?;
                self.finish(client, startup, &user).await
            }
            (_, other) => Err(fatal(
                "08P01",
                format!(
                    "unexpected message during start-up: {}",
                    message_name(&other)
                ),
            )),
        }
    }
}

fn message_name(m: &PgWireFrontendMessage) -> &'static str {
    match m {
        PgWireFrontendMessage::Startup(_) => "StartupMessage",
        PgWireFrontendMessage::PasswordMessageFamily(_) => "PasswordMessage",
        PgWireFrontendMessage::Query(_) => "Query",
        _ => "a message that is not part of start-up",
    }
}

/// The end of a successful start-up: pgwire's (connection registered for
/// cancel requests, AuthenticationOk, parameters, BackendKeyData), plus
/// the parameters that depend on the role.
/// The run-time parameters a start-up packet sets: every parameter but
/// `user`, `database`, `replication` and protocol options (`_pq_.…`), then
/// those of `options` (`-c name=value`, `--name=value`; a backslash keeps
/// the next character, so `\ ` is a space in a value), as PostgreSQL
/// applies them.
fn startup_settings(
    meta: &std::collections::HashMap<String, String>,
) -> PgWireResult<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = meta
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "user" | "database" | "replication" | "options")
                && !k.starts_with("_pq_.")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    if let Some(options) = meta.get("options") {
        out.extend(parse_options(options)?);
    }
    Ok(out)
}

/// The `name=value` settings of a start-up `options` string.
fn parse_options(options: &str) -> PgWireResult<Vec<(String, String)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let invalid = |w: &str| {
        fatal(
            "22023",
            format!("invalid command-line argument for server process: {w}"),
        )
    };
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        let setting = if w == "-c" {
            words.next().ok_or_else(|| invalid(&w))?
        } else if let Some(rest) = w.strip_prefix("-c") {
            rest.to_string()
        } else if let Some(rest) = w.strip_prefix("--") {
            rest.to_string()
        } else {
            return Err(invalid(&w));
        };
        let Some((k, v)) = setting.split_once('=') else {
            return Err(invalid(&setting));
        };
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

pub struct Finish {
    conn: Weak<Conn>,
    manager: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Finish {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.manager.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(conn) = self.conn.upgrade() else {
            return Ok(());
        };
        let session = conn.session.lock().await;
        for name in crate::engine::session::REPORTED {
            if let Some(v) = session.params.get(name) {
                client
                    .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        name.to_string(),
                        v.to_string(),
                    )))
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_options;

    #[test]
    fn startup_options() {
        let got =
            parse_options("-c search_path=sales,public --statement-timeout=5s -cTimeZone=UTC")
                .unwrap();
        assert_eq!(
            got,
            vec![
                ("search_path".to_string(), "sales,public".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("TimeZone".to_string(), "UTC".to_string()),
            ]
        );
        assert_eq!(
            parse_options(r"-c application_name=a\ b").unwrap(),
            vec![("application_name".to_string(), "a b".to_string())]
        );
        assert!(parse_options("-x").is_err());
        assert!(parse_options("-c nothing").is_err());
    }
}

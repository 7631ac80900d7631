//! HTTP ingest (`--http-listen ADDR`):
//! `POST /v1/sources/{name}[?database=db&header=true]` with
//! NDJSON (`application/x-ndjson`), a JSON array or object
//! (`application/json`) or CSV (`text/csv`) into a source or table.
//!
//! A request is one atomic write: every row is decoded and typed first, a
//! bad one answers 400 naming its row and column and nothing is stored;
//! otherwise the rows are committed and the answer (200, with the offsets)
//! comes only once they are durable.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::decode::{self, Message};
use super::spec::{Encode, Format, SourceSpec};
use crate::auth::Privilege;
use crate::engine::commit::Ingest;
use crate::engine::{Engine, EngineError};

/// How the HTTP listener behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The largest request body accepted (413 beyond).
    pub max_body: usize,
    /// Whether requests must carry a role's password (HTTP Basic), as the
    /// SQL port does with `--auth scram-sha-256`.
    pub require_password: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body: 64 << 20,
            require_password: false,
        }
    }
}

/// Serves HTTP ingest on `listener` until the task is dropped.
pub async fn serve(home: Arc<Engine>, listener: tokio::net::TcpListener, options: HttpOptions) {
    let options = Arc::new(options);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let home = home.clone();
        let options = options.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let home = home.clone();
                let options = options.clone();
                async move { Ok::<_, Infallible>(handle(&home, &options, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({ "error": message.into() }))
}

fn engine_error(e: &EngineError) -> Reply {
    let state = crate::server::errors::sqlstate(e);
    let status = match &state[..2] {
        "42" if state == "42501" => StatusCode::FORBIDDEN,
        "42" | "22" | "23" | "0A" => StatusCode::BAD_REQUEST,
        "3D" | "55" | "53" | "57" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    reply(
        status,
        json!({ "error": crate::server::errors::message(e), "sqlstate": state }),
    )
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The role a request acts as: HTTP Basic credentials (checked against
/// the role's password when passwords are required), else the bootstrap
/// superuser on a trust server.
fn role_of(
    engine: &Engine,
    options: &HttpOptions,
    req: &Request<Incoming>,
) -> Result<(String, bool), Box<Reply>> {
    use base64::Engine as _;
    let unauthorized = |m: &str| {
        let mut r = error(StatusCode::UNAUTHORIZED, m);
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"freshet\""),
        );
        Box::new(r)
    };
    let basic = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let access = engine.access();
    let (user, password) = match basic {
        Some(c) => {
            let (u, p) = c.split_once(':').unwrap_or((c.as_str(), ""));
            (u.to_string(), Some(p.to_string()))
        }
        None if options.require_password => {
            return Err(unauthorized("authentication required (HTTP Basic)"))
        }
        None => (crate::auth::BOOTSTRAP_ROLE.to_string(), None),
    };
    let role = access.roles.get(&user).filter(|r| r.login);
    let Some(role) = role else {
        return Err(unauthorized(&format!(
            "password authentication failed for user \"{user}\""
        )));
    };
    if options.require_password {
        let ok = role
            .verifier()
            .zip(password.as_deref())
            .is_some_and(|(v, p)| v.matches(p));
        if !ok {
            return Err(unauthorized(&format!(
                "password authentication failed for user \"{user}\""
            )));
        }
    }
    Ok((user, role.superuser))
}

async fn handle(home: &Arc<Engine>, options: &HttpOptions, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    if path == "/health" || path == "/v1/health" {
        return reply(StatusCode::OK, json!({ "status": "ok" }));
    }
    let Some(name) = path.strip_prefix("/v1/sources/").map(percent_decode) else {
        return error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"));
    };
    if req.method() != hyper::Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST to send rows to a source or table",
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
        return r;
    }
    let (user, superuser) = match role_of(home, options, &req) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let database =
        query_param(query.as_deref(), "database").unwrap_or_else(|| home.database_name());
    let (engine, _ticket) = match home.databases().connect(&database, superuser, home).await {
        Ok(x) => x,
        Err(e) => return engine_error(&e),
    };
    // (`schema.name`, or a name in public; as written, else lowercased as
    // an unquoted SQL name would be)
    let catalog_name = |n: &str| match n.split_once('.') {
        Some(("public", rel)) => rel.to_string(),
        _ => n.to_string(),
    };
    let def = engine
        .relation(&catalog_name(&name))
        .or_else(|| engine.relation(&catalog_name(&name.to_lowercase())));
    let Some(def) = def else {
        return error(
            StatusCode::NOT_FOUND,
            format!("source or table \"{name}\" does not exist in database \"{database}\""),
        );
    };
    if !def.is_base() {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "\"{name}\" is a {}: only sources and tables take rows",
                def.kind.as_str()
            ),
        );
    }
    if let Err(e) = crate::auth::check(&engine.access().roles, &user, &def, Privilege::Insert) {
        return engine_error(&e.into());
    }
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/x-ndjson")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let encode = match content_type.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" | "application/json" => {
            Encode::Json
        }
        "text/csv" => Encode::Csv,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other}: send application/x-ndjson, application/json or text/csv"),
            )
        }
    };
    let body = match Limited::new(req.into_body(), options.max_body)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than {} bytes (--http-max-body); send it in parts",
                        options.max_body
                    ),
                );
            }
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
    };
    let header = query_param(query.as_deref(), "header").is_some_and(|v| v != "false");
    let messages = match messages(&body, &content_type, header) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let spec = SourceSpec {
        connector: "http".into(),
        options: Default::default(),
        format: match (&def.source, encode) {
            (Some(s), Encode::Json) => s.format,
            _ => Format::Plain,
        },
        encode,
        encode_options: Default::default(),
        include: def
            .source
            .as_ref()
            .map(|s| s.include.clone())
            .unwrap_or_default(),
        paused: false,
    };
    let rows = messages.len();
    let d = decode::decode(&def, &spec, &messages);
    if let Some(bad) = d.bad.first() {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({
                "error": format!("{}: {}", messages[bad.index].position, bad.error),
                "row": bad.index + 1,
                "stored": 0,
            }),
        );
    }
    let ingest_rows = match super::runner::ingest_rows(&def, &spec, d.rows, d.deletes) {
        Ok(r) => r,
        Err(e) => return engine_error(&e),
    };
    let op = Ingest {
        rel: def.id,
        rows: ingest_rows,
        position: None,
        errors: vec![],
        forget: vec![],
    };
    match engine.ingest(op).await {
        Ok(out) => {
            let first = out.first_offset + out.retracted as u64;
            reply(
                StatusCode::OK,
                json!({
                    "rows": rows,
                    "inserted": out.inserted,
                    "first_offset": (out.inserted > 0).then_some(first),
                    "last_offset": (out.inserted > 0).then(|| first + out.inserted as u64 - 1),
                }),
            )
        }
        Err(e) => engine_error(&e),
    }
}

/// A body as messages, each named by its row (1-based; for NDJSON and CSV
/// its line).
fn messages(body: &[u8], content_type: &str, header: bool) -> Result<Vec<Message>, Box<Reply>> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8 (at byte {})", e.valid_up_to()),
        ))
    })?;
    let msg = |position: String, payload: &[u8]| Message {
        payload: Some(payload.to_vec()),
        position,
        ..Default::default()
    };
    let mut out = Vec::new();
    match content_type {
        "application/json" => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                Box::new(error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
            })?;
            match v {
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        out.push(msg(format!("row {}", i + 1), item.to_string().as_bytes()));
                    }
                }
                other => out.push(msg("row 1".into(), other.to_string().as_bytes())),
            }
        }
        "text/csv" => {
            let mut records = decode::csv_records(text).into_iter();
            if header {
                records.next();
            }
            for (i, r) in records.enumerate() {
                out.push(msg(format!("row {}", i + 1), r.as_bytes()));
            }
        }
        _ => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                out.push(msg(format!("line {}", i + 1), line.as_bytes()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("s.t"), "s.t");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            query_param(Some("x=1&database=shop"), "database").as_deref(),
            Some("shop")
        );
    }
}

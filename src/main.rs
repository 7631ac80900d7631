//! The `freshet` command: `freshet` or `freshet serve` runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use freshet::server::{self, ServerOptions};
use freshet::{Engine, EngineConfig};

#[derive(Parser, Debug)]
#[command(
    name = "freshet",
    version,
    about = "A streaming SQL database that speaks the Postgres wire protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct ServeArgs {
    /// Where the log, catalog and checkpoints live.
    #[arg(long, default_value = "./freshet-data", env = "FRESHET_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5433", env = "FRESHET_LISTEN")]
    listen: SocketAddr,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, default_value = "info", env = "FRESHET_LOG")]
    log_level: String,
    /// Accept connections from non-loopback addresses (requires `--auth
    /// scram`).
    #[arg(long, env = "FRESHET_ALLOW_REMOTE")]
    allow_remote: bool,
    /// How clients authenticate: `trust` (any role that may log in, no
    /// password; loopback clients only) or `scram` (SCRAM-SHA-256
    /// passwords, set with CREATE/ALTER ROLE … PASSWORD).
    #[arg(long, default_value = "trust", env = "FRESHET_AUTH")]
    auth: server::startup::AuthMethod,
    /// PEM certificate chain for TLS (with `--tls-key`); clients that ask
    /// for TLS (`sslmode=require`) get it.
    #[arg(long, env = "FRESHET_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "FRESHET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A file holding the password of the bootstrap superuser `freshet`,
    /// set at start-up when that role has none yet (the environment
    /// variable FRESHET_SUPERUSER_PASSWORD works the same). Needed to log
    /// in with `--auth scram` the first time.
    #[arg(long, env = "FRESHET_SUPERUSER_PASSWORD_FILE")]
    superuser_password_file: Option<PathBuf>,
    /// Seconds between checkpoints of materialized views (a restart replays
    /// the log written since the last one).
    #[arg(long, default_value_t = 30.0, env = "FRESHET_CHECKPOINT_INTERVAL")]
    checkpoint_interval: f64,
    /// Views with now() follow a clock set by `SET freshet.clock = '…'`
    /// instead of the wall clock (for tests and replays).
    #[arg(long, env = "FRESHET_MANUAL_CLOCK")]
    manual_clock: bool,
    /// The longest message a client may send, in bytes; a longer one is
    /// refused with 54000 and closes that connection.
    #[arg(long, default_value_t = server::DEFAULT_MAX_MESSAGE_BYTES, env = "FRESHET_MAX_MESSAGE_BYTES")]
    max_message_bytes: usize,
    /// Memory one query may use (bytes, or with a unit: 512MB, 2GB); past
    /// it, sorts and aggregations spill to disk where they can, or the
    /// query fails with 53200. `0`: no limit.
    #[arg(long, default_value = "2GB", value_parser = parse_bytes, env = "FRESHET_MAX_STATEMENT_MEMORY")]
    max_statement_memory: u64,
    /// Free space a write must leave on the data directory's disk (bytes,
    /// or with a unit: 64MB, 1GB); a write that would leave less is
    /// refused with 53100 and nothing of it is stored.
    #[arg(long, default_value = "64MB", value_parser = parse_bytes, env = "FRESHET_MIN_FREE_DISK")]
    min_free_disk: u64,
    /// Connections served at once; one more is refused with 53300.
    #[arg(long, default_value_t = 100, env = "FRESHET_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Address for HTTP ingest (`POST /v1/sources/{name}`); off unless
    /// given. It takes the same roles and passwords as the SQL port.
    #[arg(long, env = "FRESHET_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// The largest HTTP ingest request body (bytes, or with a unit);
    /// larger ones are refused with 413.
    #[arg(long, default_value = "64MB", value_parser = parse_bytes, env = "FRESHET_HTTP_MAX_BODY")]
    http_max_body: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("freshet-worker")
        // statements nest up to sql::depth::MAX_DEPTH levels; parsing,
        // planning and dropping them recurse on that depth (the memory is
        // reserved, and only committed as a deep statement uses it)
        .thread_stack_size(freshet::STACK_BYTES)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.allow_remote && args.auth == server::startup::AuthMethod::Trust {
        anyhow::bail!(
            "--allow-remote needs --auth scram: trust authentication is for loopback clients only"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(freshet::auth::tls::acceptor(cert, key)?),
        _ => None,
    };
    let superuser_password = match (
        &args.superuser_password_file,
        std::env::var("FRESHET_SUPERUSER_PASSWORD"),
    ) {
        (Some(f), _) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        (None, Ok(p)) if !p.is_empty() => Some(p),
        _ => None,
    };
    let mut config = EngineConfig::new(&args.data_dir);
    config.manual_clock = args.manual_clock;
    config.min_free_disk = args.min_free_disk;
    config.max_statement_memory =
        (args.max_statement_memory > 0).then_some(args.max_statement_memory as usize);
    config.checkpoint_every = std::time::Duration::try_from_secs_f64(args.checkpoint_interval)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| {
            format!(
                "invalid --checkpoint-interval {}: expected a positive number of seconds",
                args.checkpoint_interval
            )
        })?;
    let engine = tokio::task::spawn_blocking(move || Engine::open(config))
        .await
        .context("start-up task failed")?
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    engine
        .recover_views()
        .await
        .context("cannot restore materialized views")?;
    engine
        .databases()
        .open_all(&engine)
        .await
        .context("cannot open the other databases")?;
    if let Some(pw) = superuser_password {
        engine
            .set_bootstrap_password(&pw)
            .await
            .context("cannot set the superuser's password")?;
    }
    let r = engine.recovery();
    tracing::info!(
        data_dir = %args.data_dir.display(),
        relations = r.relations,
        log_entries = r.log_entries,
        rows = r.rows,
        swept_logs = r.swept_logs,
        millis = r.millis,
        "recovered"
    );
    if let Some(addr) = args.http_listen {
        if !addr.ip().is_loopback() && !args.allow_remote {
            anyhow::bail!(
                "--http-listen {addr} is not a loopback address: add --allow-remote (with --auth scram)"
            );
        }
        let http = listen(addr).with_context(|| format!("cannot listen on {addr} (HTTP)"))?;
        tracing::info!(address = %http.local_addr()?, "HTTP ingest listening");
        let options = freshet::connectors::http::HttpOptions {
            max_body: usize::try_from(args.http_max_body).unwrap_or(usize::MAX),
            require_password: args.auth != server::startup::AuthMethod::Trust,
        };
        tokio::spawn(freshet::connectors::http::serve(
            engine.clone(),
            http,
            options,
        ));
    }
    let listener =
        listen(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let options = ServerOptions {
        allow_remote: args.allow_remote,
        auth: args.auth,
        tls,
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        ..ServerOptions::default()
    };
    server::serve(engine, listener, options, shutdown_signal()).await?;
    Ok(())
}

/// The listening socket. An IPv6 wildcard (`[::]`) takes IPv4 clients too
/// (as IPv4-mapped addresses), whatever the host's default.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// A size in bytes: a number, optionally with kB, MB, GB (powers of 1024,
/// as Postgres counts them).
fn parse_bytes(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("invalid size {v:?}"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(format!("invalid size {v:?}: use B, kB, MB, GB or TB")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {v:?} is too large"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

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
    /// Accept connections from non-loopback addresses (there is no authentication yet).
    #[arg(long, env = "FRESHET_ALLOW_REMOTE")]
    allow_remote: bool,
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
    let mut config = EngineConfig::new(&args.data_dir);
    config.manual_clock = args.manual_clock;
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let options = ServerOptions {
        allow_remote: args.allow_remote,
        max_message_bytes: args.max_message_bytes,
        ..ServerOptions::default()
    };
    server::serve(engine, listener, options, shutdown_signal()).await?;
    Ok(())
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

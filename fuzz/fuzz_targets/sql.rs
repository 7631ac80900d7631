//! The SQL front end: parse, plan (DataFusion) and, for materialized views,
//! lower to a circuit, against a catalog with a source, a table and a view.
//! Nothing is executed. Errors are fine, panics (and stack overflows) are
//! not. Inputs run on a thread with the server's stack size, as statements
//! do in the server.
#![no_main]

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use freshet::engine::session::Session;
use freshet::sql::Statement;
use freshet::{Engine, EngineConfig};
use libfuzzer_sys::fuzz_target;

struct Worker {
    tx: mpsc::Sender<(Vec<u8>, mpsc::Sender<()>)>,
}

fn worker() -> &'static Mutex<Worker> {
    static W: OnceLock<Mutex<Worker>> = OnceLock::new();
    W.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Vec<u8>, mpsc::Sender<()>)>();
        std::thread::Builder::new()
            .stack_size(freshet::STACK_BYTES)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_stack_size(freshet::STACK_BYTES)
                    .enable_all()
                    .build()
                    .expect("runtime");
                let dir = tempfile::tempdir().expect("temp dir");
                let (engine, mut session) = rt.block_on(setup(dir.path()));
                for (input, done) in rx {
                    rt.block_on(plan_all(&mut session, &input));
                    let _ = done.send(());
                }
                drop(engine);
            })
            .expect("worker thread");
        Mutex::new(Worker { tx })
    })
}

async fn setup(dir: &std::path::Path) -> (Arc<Engine>, Session) {
    let engine = Engine::open(EngineConfig::new(dir)).expect("engine");
    engine.recover_views().await.expect("views");
    let mut s = Session::standalone(engine.clone()).expect("session");
    for sql in [
        "CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, channel TEXT, date_time TIMESTAMP, WATERMARK FOR date_time AS date_time - INTERVAL '5 seconds')",
        "CREATE TABLE person (id BIGINT PRIMARY KEY, name TEXT, city TEXT, born DATE, score DOUBLE PRECISION, tags JSONB)",
        "CREATE MATERIALIZED VIEW hot AS SELECT auction, count(*) AS n, max(price) AS top FROM bids GROUP BY auction",
    ] {
        s.run(sql).await.expect("setup");
    }
    (engine, s)
}

/// Parses the input and plans each statement (views are lowered too).
async fn plan_all(s: &mut Session, input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(statements) = s.parse(text) else {
        return;
    };
    for st in statements {
        match &st {
            Statement::CreateView(v) => {
                let _ = s.plan_view_emitting(&v.query, v.emit_on_close).await;
            }
            _ => {
                let _ = s.prepare(st).await;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (done, wait) = mpsc::channel();
    let w = worker().lock().expect("worker");
    w.tx.send((data.to_vec(), done)).expect("send");
    // a panic on the worker ends the channel: report it as a crash here
    wait.recv().expect("the SQL front end panicked");
});

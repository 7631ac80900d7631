//! A seeded chaos driver: concurrent writers (source inserts, table
//! upserts, updates and deletes), DDL (views created and dropped, tables
//! created and dropped, grants), and SIGKILL at random moments, then a
//! restart and a full validation:
//!
//! * every acknowledged source statement is stored exactly once and whole;
//!   every stored statement was sent; no statement is stored in part;
//!   offsets are unique;
//! * every table row holds the last acknowledged value for its key, or the
//!   value of the one statement that was in flight at the kill;
//! * every acknowledged `CREATE` exists, every acknowledged `DROP` is gone;
//! * every materialized view equals its query run in batch.
//!
//! The schedule (what each writer does, when the server is killed, which
//! DDL runs) comes from one seed; a failure prints it, and
//! `CHAOS_SEED=<seed> cargo test --test it chaos -- --nocapture` replays
//! it. The threads still race, so a replay follows the same schedule, not
//! the same interleaving. The CI run is small; the long run is
//! `CHAOS_KILLS=300 cargo test --test it chaos_long -- --ignored
//! --nocapture` (docs/reliability.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::{Client, NoTls};

use crate::harness::{sorted_rows, TestServer};

const ROWS: i64 = 4;

/// The view definitions DDL picks from.
const VIEW_QUERIES: &[&str] = &[
    "SELECT w, count(*) AS n, sum(k) AS s, max(payload) AS mx FROM events GROUP BY w",
    "SELECT count(*) AS n, count(DISTINCT stmt) AS stmts FROM events",
    "SELECT grp, sum(v) AS total, count(*) AS c FROM kv GROUP BY grp",
    "SELECT e.w, count(*) AS n FROM events e JOIN kv ON kv.id = e.w GROUP BY e.w",
    "SELECT DISTINCT grp FROM kv WHERE v % 3 = 0",
    "SELECT id, v FROM kv WHERE v > 10",
];

#[derive(Default)]
struct Ledger {
    /// Source statements sent, and acknowledged.
    tried: HashSet<i64>,
    acked: HashSet<i64>,
    /// Table key -> (last acknowledged value (None: deleted), values of
    /// statements sent after it and not acknowledged).
    kv: HashMap<i64, (Option<i64>, Vec<Option<i64>>)>,
    /// Relation name -> whether it exists as last acknowledged, and whether
    /// a DDL on it was in flight at the kill.
    ddl: BTreeMap<String, (bool, bool)>,
    /// View name -> its query.
    view_sql: HashMap<String, String>,
}

async fn connect(port: u16) -> Option<Client> {
    let conf = format!("host=127.0.0.1 port={port} user=freshet dbname=freshet");
    let (client, conn) = tokio_postgres::connect(&conf, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

/// Inserts into `events`, each statement tagged with its id.
async fn source_writer(port: u16, worker: i64, seed: u64, ledger: Arc<Mutex<Ledger>>) {
    let Some(c) = connect(port).await else { return };
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0.. {
        let id = worker * 1_000_000 + i;
        let rows: Vec<String> = (0..ROWS)
            .map(|k| {
                format!(
                    "({id}, {k}, {}, 'p{}')",
                    rng.random_range(0..8),
                    rng.random_range(0..1000)
                )
            })
            .collect();
        let sql = format!("INSERT INTO events VALUES {}", rows.join(", "));
        ledger.lock().unwrap().tried.insert(id);
        match c.batch_execute(&sql).await {
            Ok(()) => {
                ledger.lock().unwrap().acked.insert(id);
            }
            Err(e) if e.is_closed() || e.code().is_none() => return,
            Err(e) => panic!("source write {id} refused: {e}"),
        }
    }
}

/// Upserts, updates and deletes keys of its own in `kv`.
async fn table_writer(port: u16, worker: i64, seed: u64, ledger: Arc<Mutex<Ledger>>) {
    let Some(c) = connect(port).await else { return };
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0i64.. {
        let key = worker * 100 + rng.random_range(0..6);
        let value = worker * 1_000_000 + i;
        let (sql, new): (String, Option<i64>) = match rng.random_range(0..10) {
            0..=5 => (
                format!(
                    "INSERT INTO kv VALUES ({key}, {}, {value}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, grp = EXCLUDED.grp",
                    value % 5
                ),
                Some(value),
            ),
            6..=8 => {
                // an UPDATE of a missing key changes nothing
                let current = {
                    let l = ledger.lock().unwrap();
                    l.kv.get(&key).and_then(|(v, pending)| {
                        if pending.is_empty() {
                            *v
                        } else {
                            Some(-1)
                        }
                    })
                };
                match current {
                    Some(-1) => continue,
                    Some(_) => (
                        format!("UPDATE kv SET v = {value}, grp = {} WHERE id = {key}", value % 5),
                        Some(value),
                    ),
                    None => continue,
                }
            }
            _ => (format!("DELETE FROM kv WHERE id = {key}"), None),
        };
        ledger
            .lock()
            .unwrap()
            .kv
            .entry(key)
            .or_insert((None, vec![]))
            .1
            .push(new);
        match c.batch_execute(&sql).await {
            Ok(()) => {
                let mut l = ledger.lock().unwrap();
                let e = l.kv.get_mut(&key).unwrap();
                e.0 = new;
                e.1.clear();
            }
            Err(e) if e.is_closed() || e.code().is_none() => return,
            Err(e) => panic!("table write on key {key} refused: {e}"),
        }
    }
}

/// Creates and drops views and tables, and grants.
async fn ddl_writer(port: u16, seed: u64, round: u64, ledger: Arc<Mutex<Ledger>>) {
    let Some(c) = connect(port).await else { return };
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0.. {
        let (name, sql, creates) = {
            let l = ledger.lock().unwrap();
            let existing: Vec<String> = l
                .ddl
                .iter()
                .filter(|(_, (exists, pending))| *exists && !*pending)
                .map(|(n, _)| n.clone())
                .collect();
            if !existing.is_empty() && rng.random_bool(0.4) {
                let name = existing[rng.random_range(0..existing.len())].clone();
                let kind = if name.starts_with('v') {
                    "MATERIALIZED VIEW"
                } else {
                    "TABLE"
                };
                (name.clone(), format!("DROP {kind} {name}"), false)
            } else if rng.random_bool(0.75) {
                let name = format!("v_{round}_{i}");
                let q = VIEW_QUERIES[rng.random_range(0..VIEW_QUERIES.len())];
                (
                    name.clone(),
                    format!("CREATE MATERIALIZED VIEW {name} AS {q}"),
                    true,
                )
            } else {
                let name = format!("t_{round}_{i}");
                (
                    name.clone(),
                    format!("CREATE TABLE {name} (a BIGINT PRIMARY KEY, b TEXT); GRANT SELECT ON {name} TO watcher"),
                    true,
                )
            }
        };
        {
            let mut l = ledger.lock().unwrap();
            let e = l.ddl.entry(name.clone()).or_insert((false, false));
            e.1 = true;
            if creates && name.starts_with('v') {
                let q = sql
                    .split_once(" AS ")
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default();
                l.view_sql.insert(name.clone(), q);
            }
        }
        match c.batch_execute(&sql).await {
            Ok(()) => {
                let mut l = ledger.lock().unwrap();
                let e = l.ddl.get_mut(&name).unwrap();
                *e = (creates, false);
            }
            Err(e) if e.is_closed() || e.code().is_none() => return,
            Err(e) => panic!("DDL refused: {sql}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
    }
}

/// Checks everything the ledger promises; the in-flight operations of the
/// killed server may have happened or not, but wholly.
async fn validate(server: &TestServer, ledger: &mut Ledger, seed: u64, round: usize) {
    let c = server.connect().await;
    let ctx = format!("seed {seed}, round {round}");
    // sources: whole statements, acknowledged ones all there, once
    let mut per_stmt: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    let mut offsets = HashSet::new();
    for r in c
        .query("SELECT stmt, k, _offset FROM events", &[])
        .await
        .unwrap()
    {
        let (stmt, k, off): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert!(offsets.insert(off), "{ctx}: offset {off} twice");
        assert!(
            per_stmt.entry(stmt).or_default().insert(k),
            "{ctx}: ({stmt}, {k}) twice"
        );
    }
    for id in &ledger.acked {
        assert_eq!(
            per_stmt.get(id).map(|s| s.len()).unwrap_or(0) as i64,
            ROWS,
            "{ctx}: acknowledged statement {id} is not whole"
        );
    }
    for (id, ks) in &per_stmt {
        assert!(
            ledger.tried.contains(id),
            "{ctx}: statement {id} never sent"
        );
        assert_eq!(
            ks.len() as i64,
            ROWS,
            "{ctx}: statement {id} stored in part"
        );
    }
    // what was in flight either happened or not; from now on it is known
    ledger.tried = per_stmt.keys().copied().collect();
    ledger.acked = ledger.tried.clone();

    // the table: the last acknowledged value, or an in-flight one
    let stored: HashMap<i64, i64> = c
        .query("SELECT id, v FROM kv", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (key, (acked, pending)) in ledger.kv.iter_mut() {
        let got = stored.get(key).copied();
        assert!(
            got == *acked || pending.contains(&got),
            "{ctx}: key {key} holds {got:?}; acknowledged {acked:?}, in flight {pending:?}"
        );
        *acked = got;
        pending.clear();
    }
    for key in stored.keys() {
        assert!(
            ledger.kv.contains_key(key),
            "{ctx}: key {key} never written"
        );
    }

    // DDL: acknowledged creates exist, acknowledged drops are gone
    let present: BTreeSet<String> = c
        .query("SELECT relname FROM pg_catalog.pg_class", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|n| n.starts_with("v_") || n.starts_with("t_"))
        .collect();
    for (name, (exists, pending)) in ledger.ddl.iter_mut() {
        let is = present.contains(name);
        if !*pending {
            assert_eq!(
                is, *exists,
                "{ctx}: relation {name} exists: {is}, acknowledged: {exists}"
            );
        }
        *exists = is;
        *pending = false;
    }

    // every view equals its query
    for name in present.iter().filter(|n| n.starts_with("v_")) {
        let q = ledger
            .view_sql
            .get(name)
            .unwrap_or_else(|| panic!("{ctx}: view {name} was never created"))
            .clone();
        let view = sorted_rows(&c, &format!("SELECT * FROM {name}")).await;
        let batch = sorted_rows(&c, &q).await;
        assert_eq!(view, batch, "{ctx}: view {name} differs from its query");
    }
}

/// Runs the driver: `kills` rounds of writers and DDL, each ended by a
/// SIGKILL at a time drawn from the seed.
async fn run(seed: u64, kills: usize) {
    eprintln!("chaos: seed {seed}, {kills} kills (replay: CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut server = TestServer::start_with_args(&["--checkpoint-interval", "0.3"]);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE SOURCE events (stmt BIGINT, k BIGINT, w BIGINT, payload TEXT);
         CREATE TABLE kv (id BIGINT PRIMARY KEY, grp BIGINT, v BIGINT);
         CREATE ROLE watcher;",
    )
    .await
    .unwrap();
    drop(c);
    let mut ledger = Ledger::default();
    let started = Instant::now();
    for round in 0..kills {
        let shared = Arc::new(Mutex::new(std::mem::take(&mut ledger)));
        let mut tasks = Vec::new();
        for w in 0..2 {
            tasks.push(tokio::spawn(source_writer(
                server.port,
                (round * 10 + w) as i64,
                rng.random(),
                shared.clone(),
            )));
        }
        tasks.push(tokio::spawn(table_writer(
            server.port,
            rng.random_range(1..4),
            rng.random(),
            shared.clone(),
        )));
        tasks.push(tokio::spawn(ddl_writer(
            server.port,
            rng.random(),
            round as u64,
            shared.clone(),
        )));
        let after = Duration::from_millis(rng.random_range(150..900));
        tokio::time::sleep(after).await;
        server.kill();
        for t in tasks {
            if let Err(e) = t.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        ledger = Arc::try_unwrap(shared)
            .ok()
            .expect("writers finished")
            .into_inner()
            .unwrap();
        server.restart(true);
        validate(&server, &mut ledger, seed, round).await;
        if (round + 1) % 25 == 0 {
            eprintln!(
                "chaos: seed {seed}: {} kills in {:.0} s, {} source statements stored",
                round + 1,
                started.elapsed().as_secs_f64(),
                ledger.acked.len()
            );
        }
    }
    eprintln!(
        "chaos: seed {seed}: {kills} kills in {:.1} s; {} source statements and {} table keys checked, {} relations created or dropped",
        started.elapsed().as_secs_f64(),
        ledger.acked.len(),
        ledger.kv.len(),
        ledger.ddl.len()
    );
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// The CI run: a fresh seed each time (printed), a dozen kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos() {
    let kills = std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    run(seed(), kills).await;
}

/// The long run, by hand: `CHAOS_KILLS=300 cargo test --test it
/// chaos_long -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn chaos_long() {
    let kills = std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    run(seed(), kills).await;
}

//! Storage faults, on a real file system: a full disk refuses writes with
//! 53100 and nothing of them is stored, reads go on, and writes resume by
//! themselves once space is freed; a write that fails inside the storage
//! engine (the kernel answering ENOSPC to the write itself) stops writes
//! until the data directory is reopened, which happens by itself. After
//! each, a kill -9 and restart find every acknowledged row once and no
//! refused one, and the view equal to its query.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::harness::TestServer;

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mb: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }

    /// Fills the disk until `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let bytes = self.available().saturating_sub(leave);
        let f = std::fs::File::create(&filler).unwrap();
        // written, not sparse: tmpfs counts only written pages
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        let chunk = vec![7u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = w.flush();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

async fn ids(c: &Client) -> Vec<i64> {
    c.query("SELECT id FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The view equals its query, and the rows are exactly `acked`.
async fn check(c: &Client, acked: &[i64]) {
    assert_eq!(ids(c).await, acked);
    let n: i64 = c
        .query_one("SELECT n FROM stats", &[])
        .await
        .unwrap()
        .get(0);
    let batch = c
        .query_one("SELECT count(*), sum(id)::text FROM events", &[])
        .await
        .unwrap();
    assert_eq!(n, batch.get::<_, i64>(0));
    let view_total: Option<String> = c
        .query_one("SELECT total::text FROM stats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(view_total, batch.get::<_, Option<String>>(1));
}

async fn setup(c: &Client) {
    c.batch_execute(
        "CREATE TABLE events (id BIGINT PRIMARY KEY, body TEXT);
         CREATE MATERIALIZED VIEW stats AS SELECT count(*) AS n, sum(id) AS total FROM events;",
    )
    .await
    .unwrap();
}

async fn insert(c: &Client, id: i64, body_bytes: usize) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO events VALUES ($1, $2)",
        &[&id, &"x".repeat(body_bytes)],
    )
    .await
    .map(|_| ())
}

/// Retries `insert` until it succeeds (writes resume by themselves).
async fn insert_when_possible(c: &Client, id: i64) -> Duration {
    let start = Instant::now();
    loop {
        match insert(c, id, 100).await {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                assert!(["53100", "XX000"].contains(&code(&e).as_str()), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes did not resume within 30 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_then_resumes() {
    let Some(disk) = SmallDisk::mount(160) else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk test did not run"
        );
        return;
    };
    let data = disk.path().join("data");
    let mut server = TestServer::start_in(&data, &["--min-free-disk", "24MB"], &[]);
    let c = server.connect().await;
    setup(&c).await;
    let mut acked = Vec::new();
    for id in 0..50 {
        insert(&c, id, 1000).await.unwrap();
        acked.push(id);
    }
    let filler = disk.fill(16 << 20);

    // every kind of write is refused whole, with 53100
    let e = insert(&c, 1000, 100).await.unwrap_err();
    assert_eq!(code(&e), "53100", "{e}");
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("no space left on device")),
        "{e}"
    );
    let e = c
        .batch_execute("INSERT INTO events SELECT x, 'y' FROM generate_series(2000, 2999) AS g(x)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "53100", "{e}");
    let e = c
        .batch_execute("CREATE TABLE more (a INT)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "53100", "{e}");
    let e = c
        .batch_execute("UPDATE events SET body = 'z' WHERE id < 10")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "53100", "{e}");
    // reads go on, and see exactly the acknowledged rows
    check(&c, &acked).await;

    std::fs::remove_file(&filler).unwrap();
    insert_when_possible(&c, 1000).await;
    acked.push(1000);
    check(&c, &acked).await;

    server.restart(true);
    let c = server.connect().await;
    check(&c, &acked).await;
    drop(c);
    server.kill();
}

/// A shared library that makes every `pwrite` of the process fail with
/// ENOSPC while a trigger file exists: the write itself fails in the
/// kernel's words, after the free-space check passed.
fn fault_shim(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("enospc.c");
    let lib = dir.join("libenospc.so");
    std::fs::write(
        &src,
        r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>
static int triggered(void) {
    const char *f = getenv("ENOSPC_WHILE_EXISTS");
    return f && access(f, F_OK) == 0;
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    if (triggered()) { errno = ENOSPC; return -1; }
    return real(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return pwrite64(fd, buf, n, off);
}
"#,
    )
    .ok()?;
    let ok = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(lib)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_reopens_the_store() {
    let tools = tempfile::tempdir().unwrap();
    let Some(shim) = fault_shim(tools.path()) else {
        eprintln!(
            "SKIPPED: no C compiler to build the fault shim; the write-failure test did not run"
        );
        return;
    };
    let trigger = tools.path().join("disk-is-full");
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("ENOSPC_WHILE_EXISTS", trigger.to_str().unwrap()),
    ];
    let mut server = TestServer::start_in(data.path(), &[], &env);
    let c = server.connect().await;
    setup(&c).await;
    let mut acked = Vec::new();
    for id in 0..20 {
        insert(&c, id, 100).await.unwrap();
        acked.push(id);
    }
    std::fs::write(&trigger, b"").unwrap();
    // the first write fails in the storage engine; it and every write
    // after it are refused with 53100 and leave nothing behind
    for id in 100..105 {
        let e = insert(&c, id, 100).await.unwrap_err();
        assert_eq!(code(&e), "53100", "{e}");
    }
    check(&c, &acked).await;
    std::fs::remove_file(&trigger).unwrap();
    let took = insert_when_possible(&c, 200).await;
    eprintln!("writes resumed {took:?} after the fault cleared");
    acked.push(200);
    check(&c, &acked).await;
    // and the reopened store is the real one: a crash keeps all of it
    server.restart(true);
    let c = server.connect().await;
    check(&c, &acked).await;
}

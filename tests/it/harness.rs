//! Starts real `freshet` server processes for tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// Extra command-line arguments, kept for restarts.
    args: Vec<String>,
    /// Extra environment variables, kept for restarts.
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl TestServer {
    /// A server on a fresh data directory.
    pub fn start() -> TestServer {
        TestServer::start_with_args(&[])
    }

    /// A server on a fresh data directory, with extra arguments.
    pub fn start_with_args(args: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut s = TestServer::start_in_with(&dir, &args, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `dir` (which the caller keeps), with extra arguments
    /// and environment variables.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TestServer::start_in_with(dir, &args, &env)
    }

    /// A server on an existing data directory, with extra arguments.
    fn start_in_with(dir: &Path, args: &[String], env: &[(String, String)]) -> TestServer {
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_freshet"))
                .arg("--data-dir")
                .arg(dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--log-level")
                .arg("warn")
                .args(args)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn freshet");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // (the port was free when chosen; another test's server may
                // have taken it since, making ours exit: what answers must
                // be ours, still running a moment later)
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && {
                    std::thread::sleep(Duration::from_millis(100));
                    matches!(child.try_wait(), Ok(None))
                } {
                    return TestServer {
                        child: Some(child),
                        port,
                        dir: dir.to_path_buf(),
                        args: args.to_vec(),
                        env: env.to_vec(),
                        _tmp: None,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "freshet exited during start-up ({status}); retrying on another port"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("freshet did not start listening within 60 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("freshet failed to start five times");
    }

    pub fn conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet",
            self.port
        )
    }

    pub async fn connect(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.conn_string(), NoTls)
            .await
            .expect("connect to freshet");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// A connection to database `db` as role `user`.
    pub async fn connect_as(&self, db: &str, user: &str) -> Result<Client, tokio_postgres::Error> {
        let conf = format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port);
        let (client, conn) = tokio_postgres::connect(&conf, NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY-free: send SIGTERM through the `kill` command.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts on the same data directory. `crash` kills instead of stopping.
    pub fn restart(&mut self, crash: bool) {
        if crash {
            self.kill();
        } else {
            assert!(self.stop(), "server did not shut down cleanly");
        }
        let fresh = TestServer::start_in_with(&self.dir, &self.args, &self.env);
        self.port = fresh.port;
        self.child = fresh.child_take();
    }

    fn child_take(mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The rows of a simple-protocol answer, each as its text fields joined by
/// `|` (NULL as `NULL`).
pub fn row_texts(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// The rows of `sql` (simple protocol) as [`row_texts`], sorted: for
/// comparing results whatever their order.
pub async fn sorted_rows(c: &Client, sql: &str) -> Vec<String> {
    let mut out = row_texts(
        c.simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    );
    out.sort();
    out
}

/// The first row of `sql` (simple protocol) as [`row_texts`] shows it;
/// empty when there is none.
pub async fn first_row(c: &Client, sql: &str) -> String {
    row_texts(
        c.simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
    )
    .into_iter()
    .next()
    .unwrap_or_default()
}

/// Waits until `sql` answers `want` on a new connection to `server`
/// (panics after 90 seconds, showing the last answer).
pub async fn wait_for(server: &TestServer, sql: &str, want: &str) {
    let c = server.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let got = first_row(&c, sql).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}: still {got}, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A broker process of a test's own (a NATS server, a Mosquitto) on a free
/// port, so that the test can restart it mid-stream without touching the
/// machine's shared one. Killed when dropped.
pub struct Daemon {
    bin: std::path::PathBuf,
    args: Vec<String>,
    child: Option<std::process::Child>,
    pub port: u16,
}

impl Daemon {
    /// Starts `bin` with `args` (`{port}` in them replaced by a free port);
    /// `None` when the binary is not installed.
    pub fn start(bin: &str, args: &[&str]) -> Option<Daemon> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        Daemon::start_on(bin, args, port)
    }

    /// As [`Daemon::start`], on `port` (which its configuration names).
    pub fn start_on(bin: &str, args: &[&str], port: u16) -> Option<Daemon> {
        let bin = std::path::PathBuf::from(bin);
        if !bin.exists() {
            return None;
        }
        let mut d = Daemon {
            bin,
            args: args
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect(),
            child: None,
            port,
        };
        d.spawn();
        Some(d)
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new(&self.bin)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start broker");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not start",
                self.bin.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGTERM, so that it saves what it keeps) and
    /// starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! The Python drivers (psycopg2, psycopg 3, SQLAlchemy 2 with both) against
//! a fresh server: `tests/clients/python_clients.py` runs their checks and
//! fails on any that is not a listed gap. Skipped, loudly, where python3 or
//! a driver is not installed (`.ci/run` installs them with pip).

use std::process::Command;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers() {
    let server = TestServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_clients.py"
    );
    let port = server.port.to_string();
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(port).output())
            .await
            .unwrap();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: python3 is not installed; the Python driver checks did not run");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.code() == Some(2) {
        eprintln!(
            "SKIPPED: a Python driver is missing ({}); \
             pip install psycopg2-binary 'psycopg[binary]' sqlalchemy",
            stdout.trim()
        );
        return;
    }
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "Python driver checks failed:\n{stdout}\n{stderr}"
    );
}

//! Authentication, roles and privileges, over the wire: SCRAM-SHA-256
//! logins (right, wrong and missing passwords, unknown and NOLOGIN roles),
//! trust on loopback, the privileges every statement needs (42501),
//! ownership, `has_table_privilege` agreeing with what is enforced, all of
//! it kept across a kill -9; TLS from psql (`sslmode=require` and
//! `verify-full`), an IPv6 wildcard listener taking IPv4 clients, and the
//! refusals at start-up.

use std::process::Command;

use tokio_postgres::{Client, NoTls};

use crate::harness::TestServer;

const SUPER_PW: &str = "open sesame";

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

async fn login(
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let mut conf = format!("host=127.0.0.1 port={port} user={user} dbname=freshet");
    if let Some(p) = password {
        conf.push_str(&format!(" password='{p}'"));
    }
    let (client, conn) = tokio_postgres::connect(&conf, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A server with `--auth scram` whose superuser's password is [`SUPER_PW`].
fn scram_server() -> (TestServer, tempfile::NamedTempFile) {
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{SUPER_PW}\n")).unwrap();
    let server = TestServer::start_with_args(&[
        "--auth",
        "scram",
        "--superuser-password-file",
        pw.path().to_str().unwrap(),
    ]);
    (server, pw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins() {
    let (server, _pw) = scram_server();
    let admin = login(server.port, "freshet", Some(SUPER_PW)).await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE alice LOGIN PASSWORD 'wonderland';
             CREATE ROLE ghost PASSWORD 'boo';
             CREATE USER nopass;",
        )
        .await
        .unwrap();

    let alice = login(server.port, "alice", Some("wonderland"))
        .await
        .unwrap();
    let row = alice
        .query_one("SELECT current_user, session_user", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "alice");

    for (user, pw, want) in [
        ("alice", Some("rabbit"), "28P01"),
        ("freshet", Some("wrong"), "28P01"),
        // a role that does not exist looks like a wrong password
        ("nobody", Some("x"), "28P01"),
        // a role without a password cannot log in with one
        ("nopass", Some(""), "28P01"),
        // NOLOGIN: the password is right, the role may not log in
        ("ghost", Some("boo"), "28000"),
    ] {
        let e = login(server.port, user, pw)
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} logged in"));
        assert_eq!(code(&e), want, "{user}: {e}");
    }

    // a password changed by ALTER ROLE takes effect at the next login,
    // also for the superuser (the start-up file does not override it)
    admin
        .batch_execute("ALTER ROLE alice PASSWORD 'looking glass'")
        .await
        .unwrap();
    assert!(login(server.port, "alice", Some("wonderland"))
        .await
        .is_err());
    login(server.port, "alice", Some("looking glass"))
        .await
        .unwrap();
    alice
        .batch_execute("ALTER ROLE alice PASSWORD 'mine'")
        .await
        .unwrap();
    // ... and a role may change only its own password
    let e = alice
        .batch_execute("ALTER ROLE freshet PASSWORD 'taken'")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    login(server.port, "alice", Some("mine")).await.unwrap();
    // pg_authid holds the verifier, and only a superuser reads it
    let v: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
    assert!(!v.contains("mine"));
    let e = alice
        .query_one("SELECT rolpassword FROM pg_authid", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    let masked: Option<String> = alice
        .query_one(
            "SELECT rolpassword FROM pg_roles WHERE rolname = 'alice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(masked.as_deref(), Some("********"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_on_loopback_still_needs_a_role() {
    let server = TestServer::start();
    let e = login(server.port, "mallory", None).await.err().unwrap();
    assert_eq!(code(&e), "28000");
    assert!(
        message(&e).contains("role \"mallory\" does not exist"),
        "{e}"
    );
    let c = server.connect().await;
    c.batch_execute("CREATE ROLE mallory").await.unwrap();
    let e = login(server.port, "mallory", None).await.err().unwrap();
    assert_eq!(code(&e), "28000");
    assert!(message(&e).contains("not permitted to log in"), "{e}");
    c.batch_execute("ALTER ROLE mallory LOGIN").await.unwrap();
    login(server.port, "mallory", None).await.unwrap();
}

/// Runs `sql` as `c`; the SQLSTATE if it fails.
async fn attempt(c: &Client, sql: &str) -> Option<String> {
    c.batch_execute(sql).await.err().map(|e| code(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_are_enforced_and_survive_a_crash() {
    let (mut server, _pw) = scram_server();
    let admin = login(server.port, "freshet", Some(SUPER_PW)).await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE bob LOGIN PASSWORD 'b';
             CREATE ROLE bi LOGIN PASSWORD 'bi';
             CREATE SOURCE clicks (user_id BIGINT, url TEXT);
             CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT, balance BIGINT);
             INSERT INTO clicks VALUES (1, 'a'), (2, 'b'), (1, 'c');
             INSERT INTO accounts VALUES (1, 'ann', 10), (2, 'ben', 20);
             CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id;
             GRANT SELECT ON per_user TO bi;",
        )
        .await
        .unwrap();
    let bob = login(server.port, "bob", Some("b")).await.unwrap();
    let bi = login(server.port, "bi", Some("bi")).await.unwrap();

    // the read-only BI role: the view and nothing else
    let n: i64 = bi
        .query_one("SELECT sum(n)::bigint FROM per_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    for sql in [
        "SELECT * FROM clicks",
        "SELECT * FROM accounts",
        "SELECT * FROM per_user JOIN accounts ON accounts.id = per_user.user_id",
        "SELECT * FROM per_user WHERE user_id IN (SELECT id FROM accounts)",
        "EXPLAIN SELECT * FROM clicks",
        "INSERT INTO clicks VALUES (3, 'x')",
        "CREATE TABLE mine (a INT)",
        "CREATE MATERIALIZED VIEW v2 AS SELECT * FROM per_user",
        "DROP MATERIALIZED VIEW per_user",
        "ALTER MATERIALIZED VIEW per_user RECOMPUTE",
        "GRANT SELECT ON per_user TO bob",
        "CREATE ROLE eve",
        "CHECKPOINT",
        "SET ROLE freshet",
    ] {
        assert_eq!(attempt(&bi, sql).await.as_deref(), Some("42501"), "{sql}");
    }

    // grants one by one
    assert_eq!(
        attempt(&bob, "INSERT INTO accounts VALUES (3, 'bob', 0)")
            .await
            .as_deref(),
        Some("42501")
    );
    admin
        .batch_execute("GRANT INSERT ON accounts TO bob")
        .await
        .unwrap();
    assert_eq!(
        attempt(&bob, "INSERT INTO accounts VALUES (3, 'bob', 0)").await,
        None
    );
    // UPDATE without reading the rows needs UPDATE only; with a WHERE
    // it reads them, and needs SELECT too (as in Postgres)
    admin
        .batch_execute("GRANT UPDATE ON accounts TO bob")
        .await
        .unwrap();
    assert_eq!(attempt(&bob, "UPDATE accounts SET balance = 0").await, None);
    assert_eq!(
        attempt(&bob, "UPDATE accounts SET balance = 1 WHERE id = 3")
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&bob, "UPDATE accounts SET balance = balance + 1")
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&bob, "DELETE FROM accounts WHERE id = 3")
            .await
            .as_deref(),
        Some("42501")
    );
    admin
        .batch_execute("GRANT SELECT, DELETE ON accounts TO bob")
        .await
        .unwrap();
    assert_eq!(
        attempt(&bob, "UPDATE accounts SET balance = 1 WHERE id = 3").await,
        None
    );
    assert_eq!(
        attempt(&bob, "DELETE FROM accounts WHERE id = 3").await,
        None
    );
    // INSERT … SELECT reads its source
    assert_eq!(
        attempt(
            &bob,
            "INSERT INTO accounts SELECT user_id + 10, 'c', 0 FROM clicks"
        )
        .await
        .as_deref(),
        Some("42501")
    );

    // creating needs CREATE on schema public; the creator owns the result
    admin
        .batch_execute("GRANT CREATE ON SCHEMA public TO bob")
        .await
        .unwrap();
    bob.batch_execute(
        "CREATE TABLE bobs (a INT); INSERT INTO bobs VALUES (1);
         CREATE MATERIALIZED VIEW bob_view AS SELECT count(*) AS n FROM bobs;",
    )
    .await
    .unwrap();
    // a view can only be made of what its creator may read
    assert_eq!(
        attempt(
            &bob,
            "CREATE MATERIALIZED VIEW peek AS SELECT * FROM clicks"
        )
        .await
        .as_deref(),
        Some("42501")
    );
    // the owner grants, drops, recomputes; others do not
    assert_eq!(
        attempt(&bi, "SELECT * FROM bobs").await.as_deref(),
        Some("42501")
    );
    bob.batch_execute("GRANT SELECT ON bobs TO bi")
        .await
        .unwrap();
    assert_eq!(attempt(&bi, "SELECT * FROM bobs").await, None);
    assert_eq!(
        attempt(&bob, "DROP MATERIALIZED VIEW per_user")
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&bob, "GRANT SELECT ON clicks TO bob")
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&bob, "ALTER MATERIALIZED VIEW bob_view RECOMPUTE").await,
        None
    );
    // a role that owns something cannot be dropped
    let e = admin.batch_execute("DROP ROLE bob").await.unwrap_err();
    assert_eq!(code(&e), "2BP01");
    let detail = e
        .as_db_error()
        .and_then(|d| d.detail())
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("owner of table bobs"), "{detail}");

    // has_table_privilege says what is enforced, for every role, relation
    // and privilege
    let relations = ["clicks", "accounts", "per_user", "bobs", "bob_view"];
    for (role, client) in [("bob", &bob), ("bi", &bi)] {
        for rel in relations {
            for (privilege, sql) in [
                ("SELECT", format!("SELECT * FROM {rel} LIMIT 0")),
                (
                    "INSERT",
                    format!("INSERT INTO {rel} SELECT * FROM {rel} WHERE false"),
                ),
            ] {
                let says: bool = admin
                    .query_one(
                        "SELECT has_table_privilege($1, $2, $3)",
                        &[&role, &rel, &privilege],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let err = attempt(client, &sql).await;
                // (an INSERT into a view is refused for its kind, 42809)
                let allowed = match err.as_deref() {
                    None => true,
                    Some("42501") => false,
                    Some(_) => says,
                };
                // INSERT … SELECT also needs SELECT
                let needs_select = privilege == "INSERT";
                let says_select: bool = admin
                    .query_one(
                        "SELECT has_table_privilege($1, $2, 'SELECT')",
                        &[&role, &rel],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let expected = says && (!needs_select || says_select);
                assert_eq!(allowed, expected, "{role} {privilege} on {rel}: {err:?}");
            }
        }
    }
    let own: bool = bob
        .query_one("SELECT has_table_privilege('bobs', 'DELETE')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(own);

    // everything above is durable
    server.restart(true);
    let admin = login(server.port, "freshet", Some(SUPER_PW)).await.unwrap();
    let bob = login(server.port, "bob", Some("b")).await.unwrap();
    let bi = login(server.port, "bi", Some("bi")).await.unwrap();
    assert_eq!(attempt(&bi, "SELECT * FROM per_user").await, None);
    assert_eq!(attempt(&bi, "SELECT * FROM bobs").await, None);
    assert_eq!(
        attempt(&bi, "SELECT * FROM clicks").await.as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&bob, "DELETE FROM accounts WHERE id = 1").await,
        None
    );
    assert_eq!(
        attempt(&bob, "DROP MATERIALIZED VIEW per_user")
            .await
            .as_deref(),
        Some("42501")
    );
    // pg_class names the owner (psql's \dt shows it)
    let owner: String = admin
        .query_one(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'bobs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "bob");

    // revoking and handing over
    admin
        .batch_execute("REVOKE ALL ON accounts FROM bob")
        .await
        .unwrap();
    assert_eq!(
        attempt(&bob, "SELECT * FROM accounts").await.as_deref(),
        Some("42501")
    );
    admin
        .batch_execute(
            "REASSIGN OWNED BY bob TO freshet;
             REVOKE CREATE ON SCHEMA public FROM bob;
             REVOKE SELECT ON bobs FROM bi;",
        )
        .await
        .unwrap();
    assert_eq!(
        attempt(&bob, "DROP TABLE bobs").await.as_deref(),
        Some("42501")
    );
    admin.batch_execute("DROP ROLE bob").await.unwrap();
    assert!(login(server.port, "bob", Some("b")).await.is_err());
    // the superuser cannot stop being one, nor be dropped
    assert_eq!(
        attempt(&admin, "ALTER ROLE freshet NOSUPERUSER")
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        attempt(&admin, "DROP ROLE freshet").await.as_deref(),
        Some("55006")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_role_acts_as_another_role() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE ROLE reader; CREATE TABLE t (a INT); INSERT INTO t VALUES (1);
         SET ROLE reader;",
    )
    .await
    .unwrap();
    let row = c
        .query_one("SELECT current_user, session_user", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "reader");
    assert_eq!(row.get::<_, String>(1), "freshet");
    assert_eq!(
        attempt(&c, "SELECT * FROM t").await.as_deref(),
        Some("42501")
    );
    c.batch_execute("RESET ROLE").await.unwrap();
    assert_eq!(attempt(&c, "SELECT * FROM t").await, None);
    assert_eq!(
        attempt(&c, "SET ROLE nobody").await.as_deref(),
        Some("42704")
    );
}

#[test]
fn remote_clients_need_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--allow-remote"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote needs --auth scram"), "{err}");
}

/// A listener on `[::]` takes IPv4 loopback clients; a client from
/// another address of this host is refused with a message, not a silent
/// close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_wildcard_takes_ipv4_clients() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("[::]:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", &format!("[::]:{port}"), "--log-level", "warn"])
        .spawn()
        .unwrap();
    let mut client = None;
    for _ in 0..300 {
        if let Ok(c) = login(port, "freshet", None).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let c = client.expect("an IPv4 client of a [::] listener connects");
    let who: String = c
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "freshet");
    // another address of this machine, if it has one
    let other = Command::new("hostname")
        .arg("-I")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
                .filter(|a| !a.is_loopback())
        });
    match other {
        Some(ip) => {
            let conf = format!("host={ip} port={port} user=freshet dbname=freshet");
            let e = tokio_postgres::connect(&conf, NoTls).await.err().unwrap();
            assert_eq!(code(&e), "28000", "{e}");
            assert!(message(&e).contains("loopback clients only"), "{e}");
        }
        None => eprintln!("SKIPPED: this host has no non-loopback IPv4 address to connect from"),
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn psql_ok(conninfo: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-At", "-d", conninfo, "-c", "SELECT current_user"])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// TLS from psql: `sslmode=require` and `verify-full` against a CA of the
/// test's own; a server without a certificate refuses `require` cleanly.
#[test]
fn tls_from_psql() {
    if Command::new("psql").arg("--version").output().is_err()
        || Command::new("openssl").arg("version").output().is_err()
    {
        eprintln!("SKIPPED: psql or openssl is not installed; the TLS test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]);
    std::fs::write(p("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("san.ext"),
        "-out",
        &p("server.pem"),
    ]);

    let server = TestServer::start_with_args(&[
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
    ]);
    let base = format!(
        "host=127.0.0.1 port={} user=freshet dbname=freshet",
        server.port
    );
    assert_eq!(
        psql_ok(&format!("{base} sslmode=require")).unwrap(),
        "freshet"
    );
    assert_eq!(
        psql_ok(&format!(
            "{base} sslmode=verify-full sslrootcert={}",
            p("ca.pem")
        ))
        .unwrap(),
        "freshet"
    );
    // a client that does not ask for TLS still connects
    assert_eq!(
        psql_ok(&format!("{base} sslmode=disable")).unwrap(),
        "freshet"
    );
    // the wrong CA is refused by the client
    let e = psql_ok(&format!(
        "{base} sslmode=verify-full sslrootcert={}",
        p("server.pem")
    ))
    .unwrap_err();
    assert!(e.contains("certificate"), "{e}");

    let plain = TestServer::start();
    let e = psql_ok(&format!(
        "host=127.0.0.1 port={} user=freshet dbname=freshet sslmode=require",
        plain.port
    ))
    .unwrap_err();
    assert!(e.contains("does not support SSL"), "{e}");
}

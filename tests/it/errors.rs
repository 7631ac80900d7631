//! Bad input: each statement fails whole, with a Postgres error code and a
//! message naming the row or column, nothing of it is stored, and the server
//! keeps serving.

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;

async fn count(c: &tokio_postgres::Client, rel: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {rel}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

async fn setup() -> (TestServer, tokio_postgres::Client) {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE SOURCE s (id BIGINT NOT NULL, name TEXT, at TIMESTAMP);
         CREATE TABLE t (id BIGINT PRIMARY KEY, v INT);
         INSERT INTO t VALUES (1, 10);",
    )
    .await
    .unwrap();
    (server, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_in_insert_store_nothing() {
    let (_server, c) = setup().await;
    let e = c
        .batch_execute("INSERT INTO s VALUES (1, 'a', '2026-01-01'), (2, 'b', '2026-01-01'), ('x3', 'c', '2026-01-01')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    let m = message(&e);
    assert!(m.contains("row 3") && m.contains("\"id\""), "{m}");
    assert_eq!(count(&c, "s").await, 0);

    let e = c
        .batch_execute("INSERT INTO s VALUES (1, 'a')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42601");
    let e = c
        .batch_execute("INSERT INTO s VALUES (1, 'a', 'a', 'b')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42601");
    let e = c
        .batch_execute("INSERT INTO s (name) VALUES ('no id')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23502");
    let e = c
        .batch_execute("INSERT INTO s (nope) VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42703");
    let e = c
        .batch_execute("INSERT INTO s VALUES (1, 'a', 'not a time')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    assert!(message(&e).contains("\"at\""), "{}", message(&e));
    let e = c
        .batch_execute("INSERT INTO t VALUES (2, 99999999999)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22003");
    assert_eq!(count(&c, "s").await, 0);
    assert_eq!(count(&c, "t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_violations_store_nothing() {
    let (_server, c) = setup().await;
    let e = c
        .batch_execute("INSERT INTO t VALUES (2, 1), (3, 1), (1, 1)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    assert!(message(&e).contains("Key (id)=(1)"), "{}", message(&e));
    let e = c
        .batch_execute("INSERT INTO t VALUES (5, 1), (5, 2)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    c.batch_execute("INSERT INTO t VALUES (2, 20)")
        .await
        .unwrap();
    let e = c.batch_execute("UPDATE t SET id = 7").await.unwrap_err();
    assert_eq!(code(&e), "23505", "{}", message(&e));
    let ids: Vec<i64> = c
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_the_engine_refuses() {
    let (_server, c) = setup().await;
    for (sql, state) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM nope", "42P01"),
        ("SELECT nope FROM s", "42703"),
        ("CREATE SOURCE s (a INT)", "42P07"),
        ("UPDATE s SET name = 'x'", "42809"),
        ("DELETE FROM s", "42809"),
        ("CREATE SOURCE w (a POINT)", "0A000"),
        ("COPY s FROM '/etc/passwd'", "0A000"),
        ("SHOW no_such_setting", "42704"),
        ("DROP TABLE s", "42809"),
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&e), state, "{sql}: {}", message(&e));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_copy_line_stores_nothing_and_names_the_line() {
    let (_server, c) = setup().await;
    let sink = c
        .copy_in("COPY s FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(
        b"id,name,at\n1,a,2026-01-01 00:00:00\n2,b,2026-01-01 00:00:00\n",
    ))
    .await
    .unwrap();
    sink.send(Bytes::from_static(
        b"three,c,2026-01-01 00:00:00\n4,d,2026-01-01 00:00:00\n",
    ))
    .await
    .unwrap();
    let e = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(code(&e), "22P02");
    let m = message(&e);
    assert!(m.contains("line 4") && m.contains("column id"), "{m}");
    assert_eq!(count(&c, "s").await, 0);

    // wrong column count
    let sink = c.copy_in("COPY s FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"1\ta\t2026-01-01\textra\n"))
        .await
        .unwrap();
    let e = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(code(&e), "22P04");
    assert!(message(&e).contains("line 1"), "{}", message(&e));

    // and a good one goes through
    let sink = c.copy_in("COPY s (id, name) FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"1\ta\n2\t\\N\n"))
        .await
        .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 2);
    assert_eq!(count(&c, "s").await, 2);
}

/// Binary COPY: PostgreSQL's format, split anywhere; a malformed stream
/// (signature, field count, value size, no trailer) stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_in() {
    let (_server, c) = setup().await;
    let header = |v: &mut Vec<u8>| {
        v.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
    };
    let field = |v: &mut Vec<u8>, b: Option<&[u8]>| match b {
        Some(b) => {
            v.extend_from_slice(&(b.len() as i32).to_be_bytes());
            v.extend_from_slice(b);
        }
        None => v.extend_from_slice(&(-1i32).to_be_bytes()),
    };
    let row = |v: &mut Vec<u8>, id: i64, name: Option<&str>| {
        v.extend_from_slice(&2i16.to_be_bytes());
        field(v, Some(&id.to_be_bytes()));
        field(v, name.map(str::as_bytes));
    };
    let send = async |data: Vec<u8>, pieces: usize| {
        let sink = c
            .copy_in("COPY s (id, name) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let mut sink = Box::pin(sink);
        let step = data.len().div_ceil(pieces);
        for chunk in data.chunks(step) {
            sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        sink.as_mut().finish().await
    };
    let mut good = Vec::new();
    header(&mut good);
    row(&mut good, 1, Some("héllo"));
    row(&mut good, 2, None);
    good.extend_from_slice(&(-1i16).to_be_bytes());
    assert_eq!(send(good.clone(), 7).await.unwrap(), 2);
    let rows = c
        .query("SELECT id, name FROM s ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, Some("héllo".into())), (2, None)]);

    let mut bad_signature = good.clone();
    bad_signature[0] = b'X';
    let mut no_trailer = good.clone();
    no_trailer.truncate(no_trailer.len() - 2);
    let mut wrong_size = Vec::new();
    header(&mut wrong_size);
    row(&mut wrong_size, 3, Some("ok"));
    wrong_size.extend_from_slice(&2i16.to_be_bytes());
    field(&mut wrong_size, Some(&[0, 1]));
    field(&mut wrong_size, None);
    wrong_size.extend_from_slice(&(-1i16).to_be_bytes());
    let mut one_field = Vec::new();
    header(&mut one_field);
    one_field.extend_from_slice(&1i16.to_be_bytes());
    field(&mut one_field, Some(&4i64.to_be_bytes()));
    one_field.extend_from_slice(&(-1i16).to_be_bytes());
    for (what, data, says) in [
        ("signature", bad_signature, "signature not recognized"),
        ("trailer", no_trailer, "no trailer"),
        ("size", wrong_size, "line 2"),
        ("field count", one_field, "row field count is 1, expected 2"),
    ] {
        let e = send(data, 3).await.unwrap_err();
        assert_eq!(code(&e), "22P04", "{what}");
        assert!(message(&e).contains(says), "{what}: {}", message(&e));
    }
    assert_eq!(count(&c, "s").await, 2);
    // binary COPY TO writes the same format back, byte for byte, with the
    // row count in the tag
    let out = c
        .copy_out("COPY (SELECT id, name FROM s ORDER BY id) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = out.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), good);
    let empty = c
        .copy_out("COPY (SELECT id FROM s WHERE false) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = empty.try_collect().await.unwrap();
    let mut nothing = Vec::new();
    header(&mut nothing);
    nothing.extend_from_slice(&(-1i16).to_be_bytes());
    assert_eq!(chunks.concat(), nothing);
    let e = c
        .batch_execute("COPY s TO STDOUT (FORMAT binary, HEADER)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42601", "{}", message(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_copy_stores_nothing() {
    let (server, c) = setup().await;
    let (c2, conn2) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn2);
    let sink = c2.copy_in("COPY s FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    for i in 0..1000 {
        sink.send(Bytes::from(format!("{i}\tname\t2026-01-01 00:00:00\n")))
            .await
            .unwrap();
    }
    // Drop the socket without CopyDone.
    conn_task.abort();
    let _ = conn_task.await;
    drop(sink);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(count(&c, "s").await, 0);
    c.batch_execute("INSERT INTO s VALUES (1, 'still serving', NULL)")
        .await
        .unwrap();
    assert_eq!(count(&c, "s").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_closes_only_that_connection() {
    let (server, c) = setup().await;
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    // StartupMessage: length, protocol 3.0, user=freshet, database=freshet
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    body.extend_from_slice(b"user\0freshet\0database\0freshet\0\0");
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    raw.write_all(&msg).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = raw.read(&mut buf).await.unwrap();
    // A Query message claiming to be 1.9 GB long.
    raw.write_all(&[b'Q', 0x70, 0, 0, 0]).await.unwrap();
    raw.write_all(&[0u8; 1024]).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        raw.read_to_end(&mut rest),
    )
    .await;
    // Other clients are unaffected.
    c.batch_execute("INSERT INTO s VALUES (1, 'ok', NULL)")
        .await
        .unwrap();
    assert_eq!(count(&c, "s").await, 1);
}

/// Text that is not UTF-8, or holds NUL, is refused with 22021 as in
/// Postgres (it used to be stored with U+FFFD or NUL), and a Bind whose
/// lengths point outside it answers 08P01: the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_text_and_malformed_messages_are_refused() {
    use crate::raw::{codes, extended, field, msg, Raw};
    let (server, c) = setup().await;
    let mut r = Raw::connect(server.port).await;
    r.send(&msg(
        b'Q',
        b"INSERT INTO s VALUES (1, 'a\xff\xfeb', NULL)\0",
    ))
    .await;
    let got = r.until_ready().await;
    assert_eq!(codes(&got), vec!["22021"]);
    let m = got.iter().find(|(t, _)| *t == b'E').unwrap();
    assert_eq!(
        field(&m.1, b'M'),
        "invalid byte sequence for encoding \"UTF8\": 0xff"
    );
    // NUL in a text parameter
    let mut p = 1i16.to_be_bytes().to_vec();
    p.extend_from_slice(&3i32.to_be_bytes());
    p.extend_from_slice(b"a\0b");
    r.send(&extended("INSERT INTO s VALUES (2, $1, NULL)", &p))
        .await;
    assert_eq!(codes(&r.until_ready().await), vec!["22021"]);
    // a parameter length far beyond the message
    let mut p = 1i16.to_be_bytes().to_vec();
    p.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    p.extend_from_slice(b"abc");
    r.send(&extended("INSERT INTO s VALUES (3, $1, NULL)", &p))
        .await;
    assert_eq!(codes(&r.until_ready().await), vec!["08P01"]);
    // counts that do not add up
    let mut p = (-5i16).to_be_bytes().to_vec();
    p.extend_from_slice(b"junk");
    r.send(&extended("SELECT $1", &p)).await;
    assert_eq!(codes(&r.until_ready().await), vec!["08P01"]);
    // the same connection still works, and nothing was stored
    r.send(&msg(b'Q', b"SELECT count(*) FROM s\0")).await;
    let got = r.until_ready().await;
    assert!(codes(&got).is_empty(), "{got:?}");
    assert_eq!(count(&c, "s").await, 0);
    // a driver's binary text parameter with NUL: 22021 too
    let e = c
        .execute("INSERT INTO s VALUES (4, $1, NULL)", &[&"x\0y"])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22021");
    assert_eq!(count(&c, "s").await, 0);
}

/// A message longer than --max-message-bytes is refused from its header:
/// FATAL 54000 for that connection, everyone else goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_gets_54000() {
    use crate::raw::{codes, msg, Raw};
    let server = TestServer::start_with_args(&["--max-message-bytes", "65536"]);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE s (id INT, name TEXT, at TIMESTAMP)")
        .await
        .unwrap();
    let mut r = Raw::connect(server.port).await;
    let big = format!("SELECT '{}'\0", "x".repeat(70_000));
    r.send(&msg(b'Q', big.as_bytes())).await;
    let got = r.until_ready().await;
    assert_eq!(codes(&got), vec!["54000"]);
    // just under the limit is fine
    let mut r = Raw::connect(server.port).await;
    let ok = format!("SELECT '{}'\0", "x".repeat(60_000));
    r.send(&msg(b'Q', ok.as_bytes())).await;
    assert!(codes(&r.until_ready().await).is_empty());
    c.batch_execute("INSERT INTO s VALUES (1, 'ok', NULL)")
        .await
        .unwrap();
    assert_eq!(count(&c, "s").await, 1);
}

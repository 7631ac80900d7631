//! A raw Postgres protocol client for the tests that send what no driver
//! would: invalid UTF-8, wrong lengths, oversize messages.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    pub s: TcpStream,
}

/// A typed frontend message.
pub fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// One backend message: type and body.
pub type Backend = (u8, Vec<u8>);

impl Raw {
    /// Connects and completes the startup (trust authentication).
    pub async fn connect(port: u16) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut body = 196608i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0freshet\0database\0freshet\0\0");
        let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        m.extend_from_slice(&body);
        s.write_all(&m).await.unwrap();
        let mut r = Raw { s };
        r.until_ready().await;
        r
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Reads messages up to ReadyForQuery (or the end of the stream).
    pub async fn until_ready(&mut self) -> Vec<Backend> {
        let mut out = Vec::new();
        loop {
            let mut head = [0u8; 5];
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                self.s.read_exact(&mut head),
            )
            .await;
            match read {
                Ok(Ok(_)) => {}
                _ => return out,
            }
            let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if self.s.read_exact(&mut body).await.is_err() {
                return out;
            }
            let t = head[0];
            out.push((t, body));
            if t == b'Z' {
                return out;
            }
        }
    }
}

/// The SQLSTATEs of the ErrorResponses among `msgs`.
pub fn codes(msgs: &[Backend]) -> Vec<String> {
    msgs.iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| field(b, b'C'))
        .collect()
}

/// One field of an ErrorResponse body.
pub fn field(body: &[u8], f: u8) -> String {
    body.split(|b| *b == 0)
        .find(|p| p.first() == Some(&f))
        .map(|p| String::from_utf8_lossy(&p[1..]).to_string())
        .unwrap_or_default()
}

/// Parse (unnamed, with one text parameter), Bind with `params` (already
/// encoded: count, then length-prefixed values), Execute, Sync.
pub fn extended(query: &str, params: &[u8]) -> Vec<u8> {
    let mut parse = b"\0".to_vec();
    parse.extend_from_slice(query.as_bytes());
    parse.push(0);
    parse.extend_from_slice(&1i16.to_be_bytes());
    parse.extend_from_slice(&25i32.to_be_bytes());
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&0i16.to_be_bytes());
    bind.extend_from_slice(params);
    bind.extend_from_slice(&0i16.to_be_bytes());
    let mut out = msg(b'P', &parse);
    out.extend(msg(b'B', &bind));
    out.extend(msg(b'E', b"\0\0\0\0\0"));
    out.extend(msg(b'S', b""));
    out
}

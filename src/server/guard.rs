//! The guard between the socket and the protocol decoder: every frontend
//! message is checked, as bytes, before pgwire decodes it.
//!
//! * A message longer than `--max-message-bytes` is refused from its header
//!   (its body is never buffered): FATAL 54000, the connection closes.
//! * A malformed message (lengths that point outside it, counts that do not
//!   add up) answers 08P01 and the connection goes on, as in Postgres; the
//!   decoder never sees it, so no input can make it panic.
//! * Query text, and text-format Bind parameters, must be valid UTF-8
//!   without NUL: otherwise 22021 `invalid byte sequence for encoding
//!   "UTF8": 0xff`, as in Postgres (pgwire would decode them lossily).
//!
//! A message that fails a non-fatal check is replaced, in the byte stream,
//! by a Query (simple protocol) or Parse (extended protocol) whose text is
//! [`REJECTED`] followed by the SQLSTATE and the message: the handler
//! answers it with that error, and the extended protocol then skips to the
//! next Sync as after any error. [`check_frame`] is a pure function over
//! bytes (the fuzz target calls it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Text of a message the guard replaced; see the module documentation.
pub const REJECTED: &str = "\u{1}freshet:rejected\u{1}";

/// The SQLSTATE and message of a replaced message, if `text` is one.
pub fn rejected(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(REJECTED)?;
    rest.split_once('\u{1}')
}

/// Startup-phase request codes (an 8-byte message whose "version" is one of
/// these is not a StartupMessage).
const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;

/// What the guard does with the bytes at the front of its buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a whole message yet.
    NeedMore,
    /// The first `n` bytes are one message; pass it on.
    Pass(usize),
    /// The first `n` bytes are one message; send these bytes instead.
    Replace(usize, Vec<u8>),
    /// Send this FATAL error and close.
    Fatal(Vec<u8>),
}

/// Where in the conversation the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Untyped startup messages (StartupMessage, SSL/GSS requests, cancel).
    Startup,
    /// Typed messages.
    Typed,
}

/// Checks the message at the front of `buf`.
pub fn check_frame(buf: &[u8], phase: &mut Phase, max_bytes: usize) -> Verdict {
    match phase {
        Phase::Startup => {
            if buf.len() < 4 {
                return Verdict::NeedMore;
            }
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            // a startup packet is small; Postgres allows 10 000 bytes
            if !(8..=10_000).contains(&len) {
                return Verdict::Fatal(fatal("08P01", "invalid length of startup packet"));
            }
            let len = len as usize;
            if buf.len() < len {
                return Verdict::NeedMore;
            }
            let code = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if code != SSL_REQUEST && code != GSSENC_REQUEST {
                *phase = Phase::Typed;
            }
            Verdict::Pass(len)
        }
        Phase::Typed => {
            if buf.len() < 5 {
                return Verdict::NeedMore;
            }
            let t = buf[0];
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            if len < 4 {
                return Verdict::Fatal(fatal("08P01", &format!("invalid message length {len}")));
            }
            let len = len as usize;
            if len > max_bytes {
                return Verdict::Fatal(fatal(
                    "54000",
                    &format!(
                        "message of {len} bytes is longer than the limit of {max_bytes} bytes (--max-message-bytes)"
                    ),
                ));
            }
            if buf.len() < len + 1 {
                return Verdict::NeedMore;
            }
            let body = &buf[5..len + 1];
            match check_body(t, body) {
                Ok(()) => Verdict::Pass(len + 1),
                Err((code, message)) => {
                    let text = format!("{REJECTED}{code}\u{1}{message}");
                    let replacement = if t == b'Q' {
                        frame(b'Q', &[text.as_bytes(), b"\0"])
                    } else {
                        // Parse of the unnamed statement, no parameters
                        frame(b'P', &[b"\0", text.as_bytes(), b"\0", &0i16.to_be_bytes()])
                    };
                    Verdict::Replace(len + 1, replacement)
                }
            }
        }
    }
}

fn frame(t: u8, parts: &[&[u8]]) -> Vec<u8> {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(n + 5);
    out.push(t);
    out.extend_from_slice(&((n + 4) as i32).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// A FATAL ErrorResponse.
pub fn fatal(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (f, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(f);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    frame(b'E', &[&body])
}

type Reject = (&'static str, String);

fn short() -> Reject {
    ("08P01", "insufficient data left in message".into())
}

/// A cursor over a message body that never reads outside it.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn cstr(&mut self) -> Result<&'a [u8], Reject> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or(("08P01", "invalid string in message".to_string()))?;
        let s = &self.0[..end];
        self.0 = &self.0[end + 1..];
        Ok(s)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        if self.0.len() < n {
            return Err(short());
        }
        let s = &self.0[..n];
        self.0 = &self.0[n..];
        Ok(s)
    }

    fn i16(&mut self) -> Result<i16, Reject> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Reject> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn end(&self) -> Result<(), Reject> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(("08P01", "invalid message format".into()))
        }
    }
}

/// Text as Postgres accepts it: UTF-8 with no NUL.
fn check_text(b: &[u8]) -> Result<(), Reject> {
    match crate::ingest::invalid_text(b) {
        None => Ok(()),
        Some(m) => Err(("22021", m)),
    }
}

fn check_body(t: u8, body: &[u8]) -> Result<(), Reject> {
    let mut b = Body(body);
    match t {
        // Query
        b'Q' => {
            let q = b.cstr()?;
            b.end()?;
            check_text(q)
        }
        // Parse: name, query, parameter types
        b'P' => {
            b.cstr()?;
            let q = b.cstr()?;
            let n = b.i16()?;
            if n < 0 {
                return Err(("08P01", format!("invalid number of parameter types {n}")));
            }
            b.take(n as usize * 4)?;
            b.end()?;
            check_text(q)
        }
        // Bind: portal, statement, parameter formats, parameters, result formats
        b'B' => {
            b.cstr()?;
            b.cstr()?;
            let nf = b.i16()?;
            if nf < 0 {
                return Err(("08P01", format!("invalid number of parameter formats {nf}")));
            }
            let mut formats = Vec::with_capacity(nf as usize);
            for _ in 0..nf {
                let f = b.i16()?;
                if f != 0 && f != 1 {
                    return Err(("08P01", format!("unsupported format code: {f}")));
                }
                formats.push(f);
            }
            let np = b.i16()?;
            if np < 0 {
                return Err(("08P01", format!("invalid number of parameters {np}")));
            }
            if nf > 1 && nf != np {
                return Err((
                    "08P01",
                    format!("bind message has {nf} parameter formats but {np} parameters"),
                ));
            }
            for i in 0..np as usize {
                let len = b.i32()?;
                if len == -1 {
                    continue;
                }
                if len < 0 {
                    return Err(("08P01", format!("invalid parameter length {len}")));
                }
                let v = b.take(len as usize)?;
                let text = match formats.len() {
                    0 => true,
                    1 => formats[0] == 0,
                    _ => formats[i] == 0,
                };
                if text {
                    check_text(v)?;
                }
            }
            let nr = b.i16()?;
            if nr < 0 {
                return Err(("08P01", format!("invalid number of result formats {nr}")));
            }
            b.take(nr as usize * 2)?;
            b.end()
        }
        // Execute: portal, row limit
        b'E' => {
            b.cstr()?;
            b.i32()?;
            b.end()
        }
        // Describe, Close: 'S' or 'P' and a name
        b'D' | b'C' => {
            let k = b.take(1)?[0];
            if k != b'S' && k != b'P' {
                return Err((
                    "08P01",
                    format!("invalid {} kind {:?}", t as char, k as char),
                ));
            }
            b.cstr()?;
            b.end()
        }
        // Sync, Flush, Terminate, CopyDone: empty
        b'S' | b'H' | b'X' | b'c' => b.end(),
        // CopyFail: a message
        b'f' => {
            b.cstr()?;
            b.end()
        }
        // CopyData (checked by the COPY decoder, whose rows can span
        // messages), password / SASL messages, and the rest: as they are
        _ => Ok(()),
    }
}

/// The socket as the protocol decoder sees it: only checked messages come
/// through (module documentation).
pub struct Guard<S> {
    inner: S,
    phase: Phase,
    max_bytes: usize,
    /// Bytes read from the socket, not yet checked.
    raw: BytesMut,
    /// Checked bytes, not yet read by the decoder.
    ready: BytesMut,
    /// A FATAL error being written before the stream ends.
    fatal: Option<(Vec<u8>, usize)>,
    eof: bool,
}

impl<S> Guard<S> {
    /// Guards `inner`; `buffered` are bytes already read from it.
    pub fn new(inner: S, phase: Phase, max_bytes: usize, buffered: &[u8]) -> Guard<S> {
        let mut raw = BytesMut::with_capacity(8192);
        raw.extend_from_slice(buffered);
        let mut g = Guard {
            inner,
            phase,
            max_bytes,
            raw,
            ready: BytesMut::new(),
            fatal: None,
            eof: false,
        };
        g.check();
        g
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves every whole message of `raw` to `ready` (or starts a fatal).
    fn check(&mut self) {
        loop {
            if self.fatal.is_some() {
                return;
            }
            match check_frame(&self.raw, &mut self.phase, self.max_bytes) {
                Verdict::NeedMore => return,
                Verdict::Pass(n) => {
                    let m = self.raw.split_to(n);
                    self.ready.extend_from_slice(&m);
                }
                Verdict::Replace(n, bytes) => {
                    self.raw.advance(n);
                    self.ready.extend_from_slice(&bytes);
                }
                Verdict::Fatal(bytes) => {
                    self.raw.clear();
                    self.fatal = Some((bytes, 0));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(out.remaining());
                out.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if let Some((bytes, sent)) = &mut this.fatal {
                // write the error, then end the stream
                while *sent < bytes.len() {
                    match Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                        Poll::Ready(Ok(n)) => *sent += n,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                let _ = Pin::new(&mut this.inner).poll_flush(cx);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    if got.is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(got);
                        this.check();
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        frame(t, &[body])
    }

    fn verdict(bytes: &[u8]) -> Verdict {
        check_frame(bytes, &mut Phase::Typed, 1 << 20)
    }

    fn rejection(v: Verdict) -> (String, String) {
        let Verdict::Replace(_, bytes) = v else {
            panic!("expected a rejection, got {v:?}");
        };
        let mut body = &bytes[5..];
        if bytes[0] == b'P' {
            // the statement name, then the text
            body = &body[1..];
        }
        let end = body.iter().position(|b| *b == 0).unwrap();
        let text = String::from_utf8_lossy(&body[..end]).to_string();
        let (c, m) = rejected(&text).expect("a rejection marker");
        (
            c.to_string(),
            m.trim_end_matches(['\0', '\u{0}']).to_string(),
        )
    }

    #[test]
    fn queries() {
        let q = typed(b'Q', b"SELECT 1\0");
        assert_eq!(verdict(&q), Verdict::Pass(q.len()));
        assert_eq!(verdict(&q[..q.len() - 1]), Verdict::NeedMore);
        let (c, m) = rejection(verdict(&typed(b'Q', b"SELECT 'a\xff'\0")));
        assert_eq!(c, "22021");
        assert_eq!(m, "invalid byte sequence for encoding \"UTF8\": 0xff");
        let (c, _) = rejection(verdict(&typed(b'Q', b"SELECT 1")));
        assert_eq!(c, "08P01");
    }

    #[test]
    fn limits_from_the_header() {
        let mut v = vec![b'Q'];
        v.extend_from_slice(&0x7000_0000i32.to_be_bytes());
        assert!(matches!(verdict(&v), Verdict::Fatal(_)));
        let mut v = vec![b'Q'];
        v.extend_from_slice(&2i32.to_be_bytes());
        assert!(matches!(verdict(&v), Verdict::Fatal(_)));
    }

    #[test]
    fn binds() {
        let bind = |params: &[u8], nparams: i16| {
            let mut b = b"\0\0".to_vec();
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&nparams.to_be_bytes());
            b.extend_from_slice(params);
            b.extend_from_slice(&0i16.to_be_bytes());
            typed(b'B', &b)
        };
        let mut p = 3i32.to_be_bytes().to_vec();
        p.extend_from_slice(b"abc");
        let ok = bind(&p, 1);
        assert_eq!(verdict(&ok), Verdict::Pass(ok.len()));
        let mut p = 0x7fff_ffffi32.to_be_bytes().to_vec();
        p.extend_from_slice(b"abc");
        assert_eq!(rejection(verdict(&bind(&p, 1))).0, "08P01");
        let mut p = 3i32.to_be_bytes().to_vec();
        p.extend_from_slice(b"a\0b");
        let (c, m) = rejection(verdict(&bind(&p, 1)));
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("22021", "invalid byte sequence for encoding \"UTF8\": 0x00")
        );
        assert_eq!(rejection(verdict(&bind(&[], -1))).0, "08P01");
        let null = (-1i32).to_be_bytes();
        let ok = bind(&null, 1);
        assert_eq!(verdict(&ok), Verdict::Pass(ok.len()));
    }

    #[test]
    fn startup() {
        let mut body = 196608i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0x\0\0");
        let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        m.extend_from_slice(&body);
        let mut phase = Phase::Startup;
        assert_eq!(check_frame(&m, &mut phase, 100), Verdict::Pass(m.len()));
        assert_eq!(phase, Phase::Typed);
        let mut ssl = 8i32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let mut phase = Phase::Startup;
        assert_eq!(check_frame(&ssl, &mut phase, 100), Verdict::Pass(8));
        assert_eq!(phase, Phase::Startup);
        let mut phase = Phase::Startup;
        assert!(matches!(
            check_frame(&0x7fff_ffffi32.to_be_bytes(), &mut phase, 100),
            Verdict::Fatal(_)
        ));
    }

    #[test]
    fn any_bytes_give_a_verdict() {
        // every prefix of every message, and garbage, without panicking
        let mut seed = 7u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 58) as usize;
            let bytes: Vec<u8> = (0..n)
                .map(|i| (seed.rotate_left(i as u32 * 7) & 0xff) as u8)
                .collect();
            let _ = check_frame(&bytes, &mut Phase::Typed, 1 << 16);
            let _ = check_frame(&bytes, &mut Phase::Startup, 1 << 16);
        }
    }
}

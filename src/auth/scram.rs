//! SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, against a stored
//! verifier in Postgres' format:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
//!
//! The server never sees or keeps the password: the client proves it
//! knows `ClientKey` where `StoredKey = H(ClientKey)`, and the server
//! proves it knows `ServerKey`. Channel binding (`-PLUS`) is not offered.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// The mechanism name in `AuthenticationSASL`.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Iterations for new verifiers, as Postgres' `scram_iterations` default.
pub const ITERATIONS: u32 = 4096;

const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 18;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// The client broke the exchange (08P01).
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The proof did not match (28P01).
    #[error("password authentication failed")]
    Failed,
}

/// What a role stores instead of its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all;
    // a zero-filled value then is still unique per exchange below because
    // the client's nonce is part of every message.
    let _ = SystemRandom::new().fill(&mut b);
    b
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares two keys in time independent of where they differ.
fn constant_time_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// SASLprep as Postgres applies it: a password that does not prepare
/// (not valid under the profile) is used as its raw bytes.
fn prepare(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

impl Verifier {
    /// A verifier for `password` with a fresh random salt.
    pub fn new(password: &str) -> Verifier {
        Verifier::with_salt(password, &random::<SALT_LEN>(), ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let mut salted = [0u8; KEY_LEN];
        let iters = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iters,
            salt,
            &prepare(password),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this verifier was made from (for
    /// HTTP Basic authentication; compared in constant time).
    pub fn matches(&self, password: &str) -> bool {
        let other = Verifier::with_salt(password, &self.salt, self.iterations);
        other
            .stored_key
            .iter()
            .zip(&self.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Reads the stored form; `None` if `s` is not a SCRAM-SHA-256 verifier.
    pub fn parse(s: &str) -> Option<Verifier> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iters, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iters.parse().ok().filter(|i| *i > 0)?;
        let salt = B64.decode(salt).ok()?;
        let key = |k: &str| -> Option<[u8; KEY_LEN]> { B64.decode(k).ok()?.try_into().ok() };
        Some(Verifier {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// A verifier for a role that does not exist or has no password, so
    /// that the exchange looks the same as for a real one: the salt is the
    /// same on every attempt for the same name, and no proof matches.
    pub fn mock(user: &str) -> Verifier {
        static SECRET: LazyLock<[u8; KEY_LEN]> = LazyLock::new(random::<KEY_LEN>);
        let salt = hmac_sha256(&*SECRET, user.as_bytes());
        Verifier {
            iterations: ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: random::<KEY_LEN>(),
            server_key: random::<KEY_LEN>(),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// The server between its first message and the client's final one.
#[derive(Debug)]
pub struct Exchange {
    verifier: Verifier,
    /// `client-first-message-bare`
    client_first_bare: String,
    server_first: String,
    /// The gs2 header the client must echo (base64) in `c=`.
    gs2_header: String,
    nonce: String,
    /// A mock exchange never succeeds.
    mock: bool,
}

/// Reads the client's first message and answers with the server's.
/// `mock` runs the exchange to the end without any chance of success
/// (unknown role, no password).
pub fn client_first(
    verifier: Verifier,
    mock: bool,
    msg: &[u8],
) -> Result<(Exchange, String), ScramError> {
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = msg
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(ScramError::Malformed(
                "channel binding was requested, but the server does not offer SCRAM-SHA-256-PLUS",
            ))
        }
        _ => return Err(ScramError::Malformed("unexpected channel-binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if !authzid.is_empty() {
        return Err(ScramError::Malformed(
            "client uses authorization identity, but it is not supported",
        ));
    }
    let gs2_header = format!("{flag},,");
    let mut attrs = bare.split(',');
    // the user name is ignored: the start-up message named the role
    match attrs.next() {
        Some(a) if a.starts_with("n=") => {}
        Some(a) if a.starts_with("m=") => {
            return Err(ScramError::Malformed(
                "mandatory extension is not supported",
            ))
        }
        _ => return Err(ScramError::Malformed("no user name attribute")),
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce attribute"))?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ScramError::Malformed("invalid nonce"));
    }
    let nonce = format!("{client_nonce}{}", B64.encode(random::<NONCE_LEN>()));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        Exchange {
            verifier,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            gs2_header,
            nonce,
            mock,
        },
        server_first,
    ))
}

impl Exchange {
    /// Checks the client's proof; on success, the server's final message
    /// (`v=<ServerSignature>`).
    pub fn client_final(self, msg: &[u8]) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof attribute"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel-binding attribute"))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed(
                "unexpected SCRAM channel-binding attribute",
            ));
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce attribute"))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof: [u8; KEY_LEN] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("malformed proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; KEY_LEN];
        for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        let matches = constant_time_eq(&sha256(&client_key), &self.verifier.stored_key);
        if self.mock || !matches {
            return Err(ScramError::Failed);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, for the tests.
    fn client_proof(
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        gs2: &str,
    ) -> (String, String) {
        let mut fields = server_first.split(',');
        let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
        let salt = B64
            .decode(fields.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iters: u32 = fields
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iters).unwrap(),
            &salt,
            &prepare(password),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored = sha256(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(gs2));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac_sha256(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(k, s)| k ^ s).collect();
        let server_key = hmac_sha256(&salted, b"Server Key");
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!(
                "v={}",
                B64.encode(hmac_sha256(&server_key, auth.as_bytes()))
            ),
        )
    }

    fn exchange(stored: &Verifier, password: &str, mock: bool) -> Result<String, ScramError> {
        let bare = "n=,r=rOprNGfwEbeRWgbNEkqO";
        let (ex, server_first) =
            client_first(stored.clone(), mock, format!("n,,{bare}").as_bytes())?;
        let (fin, expected) = client_proof(password, bare, &server_first, "n,,");
        let got = ex.client_final(fin.as_bytes())?;
        assert_eq!(got, expected);
        Ok(got)
    }

    #[test]
    fn right_password_passes_and_wrong_fails() {
        let v = Verifier::new("sekrit");
        assert!(exchange(&v, "sekrit", false).is_ok());
        assert_eq!(exchange(&v, "sekrit!", false), Err(ScramError::Failed));
        assert_eq!(exchange(&v, "sekrit", true), Err(ScramError::Failed));
    }

    #[test]
    fn stored_form_round_trips_and_matches_postgres() {
        let v = Verifier::new("pw");
        assert_eq!(Verifier::parse(&v.to_string()), Some(v));
        // what PostgreSQL 15 stored for `CREATE ROLE … PASSWORD 'pw'`:
        // the same salt and count give the same keys
        let pg = "SCRAM-SHA-256$4096:pvsZd5OimhtGFGjEjyd7Gg==$\
                  VyNB4z0tYhHQkDtBt3pwlrkd/8lfagcrDeN+Fs4VVL8=:\
                  h1K4/o8DNEz0AiYtk5nF8RD65UI0fO+o2ttS7n0zGaw=";
        let theirs = Verifier::parse(pg).unwrap();
        let mine = Verifier::with_salt("pw", &theirs.salt, theirs.iterations);
        assert_eq!(mine, theirs);
        assert_eq!(mine.to_string(), pg);
        assert!(Verifier::parse("md5abc").is_none());
        assert!(Verifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA==").is_none());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let v = Verifier::new("x");
        for m in [
            &b""[..],
            b"n",
            b"x,,n=,r=abc",
            b"n,a=bob,n=,r=abc",
            b"n,,m=ext,n=,r=abc",
            b"n,,n=,r=",
            b"p=tls-server-end-point,,n=,r=abc",
            b"\xff",
        ] {
            assert!(matches!(
                client_first(v.clone(), false, m),
                Err(ScramError::Malformed(_))
            ));
        }
        let (ex, _) = client_first(v.clone(), false, b"n,,n=,r=abc").unwrap();
        assert!(matches!(
            ex.client_final(b"c=biws,r=wrongnonce,p=AAAA"),
            Err(ScramError::Malformed(_))
        ));
    }
}

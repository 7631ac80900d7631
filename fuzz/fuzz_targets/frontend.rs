//! The frontend message path: the guard's check of each message, then
//! pgwire's decoder on every message the guard lets through. Nothing a
//! client sends may panic either.
#![no_main]

use bytes::BytesMut;
use freshet::server::guard::{check_frame, Phase, Verdict};
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let mut phase = Phase::Startup;
    let mut rest = data;
    loop {
        let before = phase;
        match check_frame(rest, &mut phase, 1 << 20) {
            Verdict::NeedMore | Verdict::Fatal(_) => break,
            Verdict::Pass(n) => {
                decode(&rest[..n], before);
                rest = &rest[n..];
            }
            Verdict::Replace(n, bytes) => {
                decode(&bytes, before);
                rest = &rest[n..];
            }
        }
    }
});

/// pgwire's decoder on one whole message.
fn decode(message: &[u8], phase: Phase) {
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let startup = phase == Phase::Startup;
    ctx.awaiting_frontend_ssl = startup;
    ctx.awaiting_frontend_startup = startup;
    let mut buf = BytesMut::from(message);
    let _ = PgWireFrontendMessage::decode(&mut buf, &ctx);
}

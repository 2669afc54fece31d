//! What each fuzz target does with its input, and the properties it checks; shared with the
//! bounded proptest run of the normal test suite (`server/tests/props.rs` includes this file),
//! so that CI checks the same code whether or not `cargo fuzz` can run.
//!
//! Every function takes any string, must never panic, and panics (a finding) only where a
//! property does not hold.

use std::collections::HashMap;
use std::net::IpAddr;

use schema::protocol::{ClientFrame, ServerFrame};
use schema::{ConvId, ConvKind, UserId};

/// A conversation id: whatever [`ConvId::kind`] accepts is exactly what the constructors make.
pub fn conv_id(s: &str) {
    let conv = ConvId(s.to_owned());
    match conv.kind() {
        Some(ConvKind::Direct(a, b)) => {
            assert!(a < b, "{s}: a 1:1 id names its lower user first");
            assert_eq!(ConvId::direct(b, a), conv, "{s}: not canonical");
            assert_eq!(conv.peer_of(a), Some(b));
            assert_eq!(conv.peer_of(b), Some(a));
            let stranger = UserId(b.0.wrapping_add(1));
            assert_eq!(conv.peer_of(stranger), None, "{s}: a third user has no peer in it");
        }
        Some(ConvKind::Group(g)) => {
            assert_eq!(ConvId::group(g), conv, "{s}: not canonical");
            assert!(g.0 > 0);
            assert_eq!(conv.peer_of(UserId(g.0)), None, "a group has no peer");
        }
        None => {}
    }
    assert!(conv.slot(7) < 7);
}

/// A client frame as the session receives it: decoded (or refused with an `invalid_frame` error
/// that names the frame's `id` when it has one), every conversation id it names classified, and
/// whatever decodes encodes back to the same frame.
pub fn client_frame(text: &str) {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => {
            let conv = match &frame {
                ClientFrame::Send { conv, .. }
                | ClientFrame::Edit { conv, .. }
                | ClientFrame::React { conv, .. }
                | ClientFrame::Delivered { conv, .. }
                | ClientFrame::Read { conv, .. }
                | ClientFrame::Recall { conv, .. }
                | ClientFrame::Delete { conv, .. }
                | ClientFrame::Typing { conv }
                | ClientFrame::Sync { conv, .. } => Some(conv.clone()),
                ClientFrame::Ping { .. } => None,
            };
            if let Some(c) = conv {
                conv_id(c.as_str());
            }
            let again = serde_json::to_string(&frame).map(|s| serde_json::from_str::<ClientFrame>(&s));
            match again {
                Ok(Ok(back)) => assert_eq!(back, frame, "{text}: does not survive encoding"),
                other => panic!("{text}: re-encoding failed: {other:?}"),
            }
        }
        Err(e) => {
            // The session answers with the frame's id when it can read one.
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
            let answer = ServerFrame::error(
                schema::error::ErrorCode::InvalidFrame,
                format!("cannot decode frame: {e}"),
                id.clone(),
            )
            .encode();
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            assert_eq!(v["type"], "error", "{answer}");
            assert_eq!(v["id"].as_str().map(str::to_owned), id, "{answer}");
        }
    }
}

/// A configuration file: loads or is refused with a message; what loads is valid and logs as
/// JSON without its secrets.
pub fn config_toml(toml: &str) {
    match server::config::Settings::from_toml(toml, HashMap::new()) {
        Ok(s) => {
            assert!(s.validate().is_ok(), "{toml}: loaded but invalid");
            let masked = s.masked();
            assert!(serde_json::from_str::<serde_json::Value>(&masked).is_ok(), "{masked}");
            if !s.admin.token.is_empty() && s.admin.token != "****" {
                assert!(!masked.contains(&format!("\"token\":\"{}\"", s.admin.token)), "{masked}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Tokens: the bearer token of a header or of `?token=`, its stored hash, the client address a
/// forwarding header yields, the CIDR and origin parsers.
pub fn tokens(s: &str) {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    let h = server::auth::hash_token(s);
    assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));

    if let Ok(v) = HeaderValue::from_str(s) {
        let req = TestRequest::default().insert_header(("Authorization", v.clone())).to_http_request();
        let got = server::auth::bearer_token(&req, true);
        if let Some(t) = &got {
            let scheme = s.split_once(' ').map(|(a, _)| a);
            assert!(scheme.is_some_and(|a| a.eq_ignore_ascii_case("bearer")), "{s:?} gave {t:?}");
            assert_eq!(t.trim(), t.as_str());
        }
        // Behind a trusted proxy the header can only name an address it holds, or the peer.
        let peer: IpAddr = [127, 0, 0, 1].into();
        let proxies =
            server::proxy::TrustedProxies::new(&["127.0.0.0/8".into(), "10.0.0.0/8".into()], "X-Forwarded-For");
        let req = TestRequest::default().insert_header(("X-Forwarded-For", v)).to_http_request();
        let client = proxies.client_addr(peer, req.headers());
        assert!(client == peer || s.contains(&client.to_string()) || s.contains(':'), "{s:?} gave {client}");
        // Without one it is always the peer.
        let none = server::proxy::TrustedProxies::new(&[], "X-Forwarded-For");
        assert_eq!(none.client_addr(peer, req.headers()), peer);
    }
    let query = format!("/ws?token={s}");
    if query.parse::<actix_web::http::Uri>().is_ok() {
        let req = TestRequest::with_uri(&query).to_http_request();
        let _ = server::auth::bearer_token(&req, true);
        assert_eq!(server::auth::bearer_token(&req, false), None, "the query only counts for /ws");
    }
    if let Some(net) = server::proxy::parse_net(s) {
        assert!(net.prefix_len() <= net.max_prefix_len());
    }
    let _ = server::middleware::valid_origin(s);
    conv_id(s);
}

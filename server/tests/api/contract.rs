//! The API contract, checked against the running server (with the checks of every answer and
//! frame in [`crate::conformance`]): the actix route table and the spec list the same routes and methods; the
//!   error-code tables of docs/API.md and docs/PROTOCOL.md name exactly the codes of
//!   `ErrorCode` (with the statuses the spec gives them); every kind of server frame occurs in a
//!   real session and validates; the spec is well formed.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse};
use schema::error::ErrorCode;
use serde_json::{json, Value};
use server::config::Settings;

use crate::conformance::{check_response, frame_validators, operation, spec, ws_schema};
use crate::helpers::{TestApp, TestResult};
use crate::ws_client::{conv_of, WsClient};

/// The admin token of these tests.
const ADMIN: &str = "contract-admin-token";

fn with_admin(s: &mut Settings) {
    s.admin.token = ADMIN.into();
}

/// The default service of the probe app: the route table as actix holds it.
async fn dump_routes(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().body(format!("{:?}", req.resource_map()))
}

/// Every full route pattern of a `ResourceMap`'s debug form (a tree of `ResourceMap { pattern:
/// ResourceDef { .. patterns: Single("..") .. }, .., nodes: Some([..]) | None }`).
fn leaf_patterns(dump: &str) -> Vec<String> {
    // Named resources are listed twice (also in `named: {..}`): drop those maps first.
    let mut dump = dump.to_owned();
    while let Some(at) = dump.find("named: {") {
        let open = at + "named: ".len();
        let (mut depth, mut in_str, mut escaped, mut end) = (0usize, false, false, dump.len());
        for (i, ch) in dump[open..].char_indices() {
            match ch {
                _ if escaped => escaped = false,
                '\\' if in_str => escaped = true,
                '"' => in_str = !in_str,
                '{' if !in_str => depth += 1,
                '}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        dump.replace_range(at..end, "");
    }
    // A walk that skips strings and tracks `[`/`]` depth: the `nodes: Some([..])` lists nest.
    let b = dump.as_bytes();
    let (mut out, mut current) = (Vec::new(), String::new());
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    let (mut depth, mut i) = (0usize, 0usize);
    let read_str = |from: usize| -> (String, usize) {
        let mut j = from;
        let mut esc = false;
        while j < b.len() {
            match b[j] {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => break,
                _ => {}
            }
            j += 1;
        }
        (dump[from..j].to_owned(), j + 1)
    };
    let prefix = |stack: &Vec<(String, usize)>| stack.last().map(|(p, _)| p.clone()).unwrap_or_default();
    while i < b.len() {
        let rest = &dump[i..];
        if rest.starts_with("patterns: Single(\"") {
            let (p, next) = read_str(i + "patterns: Single(\"".len());
            current = p;
            i = next;
        } else if rest.starts_with("nodes: Some([") {
            depth += 1;
            stack.push((format!("{}{current}", prefix(&stack)), depth));
            i += "nodes: Some([".len();
        } else if rest.starts_with("nodes: None") {
            out.push(format!("{}{current}", prefix(&stack)));
            i += "nodes: None".len();
        } else {
            match b[i] {
                b'"' => i = read_str(i + 1).1 - 1,
                b'[' => depth += 1,
                b']' => {
                    if stack.last().is_some_and(|(_, d)| *d == depth) {
                        stack.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// The route table of the production route configuration (`server::routes::configure`).
async fn actix_routes() -> TestResult<BTreeSet<String>> {
    use utoipa_actix_web::AppExt;
    let app = actix_web::test::init_service(
        App::new()
            .into_utoipa_app()
            .configure(server::routes::configure)
            .into_app()
            .default_service(web::to(dump_routes)),
    )
    .await;
    let req = actix_web::test::TestRequest::get().uri("/no/such/route/at/all").to_request();
    let body = actix_web::test::call_and_read_body(&app, req).await;
    let dump = String::from_utf8(body.to_vec())?;
    Ok(leaf_patterns(&dump).into_iter().filter(|p| !p.is_empty()).collect())
}

/// Whether an answer is the router's "no such route" (nothing registered for method and path).
fn no_route(status: StatusCode, body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    status == StatusCode::NOT_FOUND && v["error"] == "not_found" && v["message"] == "no such route"
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// The actix route table and the spec list the same paths; every method of every route
/// answers something other than "no such route" exactly when the spec has it.
async fn routes_and_spec_agree(app: TestApp) -> TestResult {
    let spec = spec(&app).await?;
    let documented: BTreeSet<String> = spec["paths"].as_object().ok_or("no paths")?.keys().cloned().collect();
    let registered = actix_routes().await?;
    assert!(registered.len() > 40, "route table not read: {registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(undocumented.is_empty(), "routes without a spec entry: {undocumented:?}");
    assert!(unregistered.is_empty(), "spec paths the app does not route: {unregistered:?}");
    let client = awc::Client::default();
    let mut probes = 0;
    for pattern in &registered {
        let concrete: String =
            pattern.split('/').map(|s| if s.starts_with('{') { "1" } else { s }).collect::<Vec<_>>().join("/");
        for method in METHODS {
            let in_spec = spec["paths"][pattern].get(method.as_str().to_ascii_lowercase()).is_some();
            let mut resp = client
                .request(method.clone(), format!("{}{concrete}", app.base))
                .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                .insert_header(("Content-Type", "application/json"))
                .send_body("{}")
                .await?;
            let body = resp.body().limit(1 << 20).await?;
            let routed = !no_route(resp.status(), &body);
            // A literal path may be routed by a template beside it (GET /groups/join is
            // GET /groups/{id} with id "join"): what counts is that the spec describes it.
            let described = operation(spec, &method, &concrete).is_some();
            assert!(!in_spec || routed, "{method} {concrete} ({pattern}) is in the spec but not routed");
            assert_eq!(routed, described, "{method} {concrete} ({pattern}): routed {routed}, described {described}");
            probes += 1;
        }
    }
    let ops: usize = spec["paths"]
        .as_object()
        .map(|p| {
            p.values()
                .map(|i| METHODS.iter().filter(|m| i.get(m.as_str().to_ascii_lowercase()).is_some()).count())
                .sum()
        })
        .unwrap_or(0);
    eprintln!("contract: {} paths, {ops} operations in the spec; {probes} method probes", registered.len());
    Ok(())
}

/// `(status, code)` pairs of a markdown table whose first column is the status and second the
/// backticked codes; or, with `status_col` false, the codes of the first column.
fn doc_table(doc: &str, heading: &str, status_col: bool) -> TestResult<BTreeSet<(u16, String)>> {
    let section = doc.split(heading).nth(1).ok_or_else(|| format!("no {heading}"))?;
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (status, codes) = if status_col { (cells[1], cells[2]) } else { ("0", cells[1]) };
        let Ok(status) = status.parse::<u16>() else { continue };
        for code in codes.split('`').skip(1).step_by(2) {
            out.insert((status, code.to_owned()));
        }
    }
    Ok(out)
}

/// Every `(status, code)` the spec's error responses can carry.
fn spec_pairs(spec: &Value) -> BTreeSet<(u16, String)> {
    let mut out = BTreeSet::new();
    for item in spec["paths"].as_object().into_iter().flat_map(|p| p.values()) {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                let codes = resp["content"]["application/json"]["schema"]["properties"]["error"]["enum"].as_array();
                for code in codes.into_iter().flatten().filter_map(Value::as_str) {
                    out.insert((status.parse().unwrap_or(0), code.to_owned()));
                }
            }
        }
    }
    out
}

/// docs/API.md and docs/PROTOCOL.md name exactly the codes of `ErrorCode`: the HTTP table has
/// every `(status, code)` the spec documents and no other, and its codes are the enum's HTTP
/// codes; the WebSocket table's codes are the enum's WebSocket codes and the frames' schema's.
async fn error_codes_match_the_docs(app: TestApp) -> TestResult {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/");
    let api = std::fs::read_to_string(format!("{root}API.md"))?;
    let protocol = std::fs::read_to_string(format!("{root}PROTOCOL.md"))?;
    let documented = doc_table(&api, "\n## Error codes\n", true)?;
    let spec_pairs = spec_pairs(spec(&app).await?);
    let missing: Vec<_> = spec_pairs.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&spec_pairs).collect();
    assert!(missing.is_empty(), "answered by the API (OpenAPI document) but not in API.md's table: {missing:?}");
    assert!(extra.is_empty(), "in API.md's table but answered by no endpoint of the spec: {extra:?}");

    let known: BTreeMap<&str, ErrorCode> = ErrorCode::ALL.iter().map(|c| (c.as_str(), *c)).collect();
    let http_docs: BTreeSet<&str> = documented.iter().map(|(_, c)| c.as_str()).collect();
    let http_enum: BTreeSet<&str> = ErrorCode::http_codes().map(ErrorCode::as_str).collect();
    let unknown: Vec<_> = http_docs.iter().filter(|c| !known.contains_key(*c)).collect();
    assert!(unknown.is_empty(), "API.md names codes ErrorCode does not have: {unknown:?}");
    assert_eq!(http_docs, http_enum, "API.md's codes vs ErrorCode's HTTP codes");

    let ws_docs: BTreeSet<String> = doc_table(&protocol, "\n## Error codes\n", false)?
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        .collect();
    let ws_enum: BTreeSet<String> = ErrorCode::ws_codes().map(|c| c.as_str().to_owned()).collect();
    let unknown: Vec<_> = ws_docs.iter().filter(|c| !known.contains_key(c.as_str())).collect();
    assert!(unknown.is_empty(), "PROTOCOL.md names codes ErrorCode does not have: {unknown:?}");
    assert_eq!(ws_docs, ws_enum, "PROTOCOL.md's codes vs ErrorCode's WebSocket codes");
    let schema = ws_schema(&app).await?;
    let frame_codes: BTreeSet<String> = schema["$defs"]["ErrorCode"]["enum"]
        .as_array()
        .ok_or("no ErrorCode in the frames' schema")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(frame_codes, ws_enum, "the frames' schema's codes vs ErrorCode's WebSocket codes");

    let unused: Vec<_> = ErrorCode::ALL.iter().filter(|c| !c.http() && !c.ws()).collect();
    assert!(unused.is_empty(), "{unused:?}");
    Ok(())
}

/// The document is OpenAPI 3.1 with unique operation ids; every error response lists its
/// codes; every protected operation names its security scheme.
async fn spec_is_well_formed(app: TestApp) -> TestResult {
    let spec = spec(&app).await?;
    assert_eq!(spec["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    let mut ops = 0;
    for (path, item) in spec["paths"].as_object().ok_or("no paths")? {
        for (method, op) in item.as_object().ok_or("bad path item")? {
            ops += 1;
            let id = op["operationId"].as_str().ok_or_else(|| format!("{method} {path}: no operationId"))?;
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path}: no tag");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path}: no summary");
            for (status, resp) in op["responses"].as_object().ok_or("no responses")? {
                if status.starts_with('4')
                    || (status.starts_with('5') && resp["content"]["application/json"].is_object())
                {
                    let codes = resp["content"]["application/json"]["schema"]["properties"]["error"]["enum"].as_array();
                    let is_readyz = path == "/readyz";
                    assert!(is_readyz || codes.is_some_and(|c| !c.is_empty()), "{method} {path} {status}: no codes");
                }
            }
        }
    }
    assert!(ops >= 60, "{ops} operations");
    // A protected route without a token: 401 as documented (checked by the Http client).
    let got = app.call(Method::GET, "/api/v1/users/me", None, None).await?;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    assert_eq!(spec["paths"]["/api/v1/users/me"]["get"]["security"], json!([{"bearer": []}]));
    assert_eq!(spec["paths"]["/admin/v1/stats"]["get"]["security"], json!([{"admin": []}]));
    // The checker every test's answers go through does refuse what the spec does not say.
    let me = Method::GET;
    let bad_code = json!({"error": "user_not_found", "message": "x"});
    assert!(check_response(spec, &me, "/api/v1/users/me", StatusCode::UNAUTHORIZED, &bad_code).is_err());
    assert!(check_response(spec, &me, "/api/v1/users/me", StatusCode::IM_A_TEAPOT, &Value::Null).is_err());
    let bad_body = json!({"id": "one", "username": "u", "nickname": "n"});
    assert!(check_response(spec, &me, "/api/v1/users/7", StatusCode::OK, &bad_body).is_err());
    let good = json!({"id": 7, "username": "u", "nickname": "n", "avatar_url": null, "bio": null});
    check_response(spec, &me, "/api/v1/users/7", StatusCode::OK, &good)?;
    Ok(())
}

/// The kinds of frames a schema's `oneOf` admits (their `type` constants).
fn kinds(def: &Value) -> BTreeSet<String> {
    def["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["properties"]["type"]["const"].as_str().map(str::to_owned))
        .collect()
}

/// A real session produces every kind of server frame, and each validates (the clients check
/// every frame they receive); valid client frames of every kind validate and invalid ones do
/// not.
async fn every_frame_kind_validates(app: TestApp) -> TestResult {
    let schema = ws_schema(&app).await?;
    let server_kinds = kinds(&schema["$defs"]["ServerFrame"]);
    let client_kinds = kinds(&schema["$defs"]["ClientFrame"]);
    assert_eq!(server_kinds.len(), 17, "{server_kinds:?}");
    assert_eq!(client_kinds.len(), 10, "{client_kinds:?}");

    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let mut b = WsClient::connect(&app, &bob).await?;
    app.befriend(&alice, &bob).await?; // event friend_request / friend_accepted
    let mut a = WsClient::connect(&app, &alice).await?;
    let mut a2 = WsClient::connect(&app, &app.login("alice").await?).await?;
    b.expect("presence").await?;
    let conv = conv_of(&alice, &bob);
    let ack = b.say(&conv, "k1", "hello").await?;
    let seq = ack["seq"].as_i64().ok_or("no seq")?;
    a.expect("msg").await?;
    a.send(json!({"type": "delivered", "conv": conv, "seq": seq})).await?;
    b.expect("delivered").await?;
    a.send(json!({"type": "typing", "conv": conv})).await?;
    b.expect("typing").await?;
    a.send(json!({"type": "read", "conv": conv, "seq": seq})).await?;
    b.expect("read").await?;
    a2.expect("read_mark").await?;
    b.send(json!({"type": "recall", "conv": conv, "seq": seq})).await?;
    a.expect("recalled").await?;
    b.say(&conv, "k2", "again").await?;
    a.expect("msg").await?;
    b.send(json!({"type": "edit", "id": "k2e", "conv": conv, "seq": seq + 1, "body": "again!"})).await?;
    a.expect("edited").await?;
    a.send(json!({"type": "react", "conv": conv, "seq": seq + 1, "emoji": "👍"})).await?;
    b.expect("reaction").await?;
    a.send(json!({"type": "delete", "conv": conv, "seq": seq + 1})).await?;
    a2.expect("deleted").await?;
    a.sync(&conv, 0, 10).await?;
    a.send(json!({"type": "ping", "nonce": "n1"})).await?;
    a.expect("pong").await?;
    a.send(json!({"type": "send", "id": "", "conv": conv, "body": "x"})).await?;
    a.expect("error").await?;
    let (s, r) =
        app.call(Method::POST, "/admin/v1/broadcast", Some(ADMIN), Some(json!({"text": "maintenance"}))).await?;
    assert_eq!(s, StatusCode::OK, "{r}");
    b.expect("notice").await?;
    let mut seen = BTreeSet::new();
    for c in [&a, &a2, &b] {
        seen.extend(c.seen.iter().cloned());
    }
    assert_eq!(seen, server_kinds, "frame kinds received vs the schema's");

    let (client, _) = frame_validators(&app).await?;
    let valid = [
        json!({"type": "send", "id": "c1", "conv": conv, "body": "hi"}),
        json!({"type": "send", "id": "c2", "conv": "g:1", "body": "hi @x", "mentions": [2], "mention_all": true}),
        json!({"type": "send", "id": "c3", "conv": conv, "body": "re", "reply_to": 1, "attachment": "u1"}),
        json!({"type": "send", "id": "c4", "conv": conv, "forward": {"conv": "g:1", "seq": 2}}),
        json!({"type": "edit", "id": "c5", "conv": conv, "seq": 1, "body": "fixed"}),
        json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍", "on": false}),
        json!({"type": "delivered", "conv": conv, "seq": 1}),
        json!({"type": "read", "conv": conv, "seq": 1}),
        json!({"type": "recall", "conv": conv, "seq": 1}),
        json!({"type": "delete", "conv": conv, "seq": 1}),
        json!({"type": "typing", "conv": conv}),
        json!({"type": "sync", "conv": conv, "after_seq": 0, "limit": 5}),
        json!({"type": "ping"}),
    ];
    let mut valid_kinds = BTreeSet::new();
    for f in &valid {
        assert!(client.is_valid(f), "{f} should be a valid client frame");
        valid_kinds.insert(f["type"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(valid_kinds, client_kinds);
    for f in [
        json!({"type": "send", "id": "c1", "conv": conv, "body": 5}),
        json!({"type": "send", "id": "c1", "conv": conv, "forward": {"conv": conv}}),
        json!({"type": "react", "conv": conv, "seq": 1}),
        json!({"type": "read", "conv": conv, "seq": 1, "extra": 1}),
        json!({"type": "explode"}),
        json!({"type": "typing"}),
    ] {
        assert!(!client.is_valid(&f), "{f} should not be a valid client frame");
        a.send(f.clone()).await?;
        let e = a.expect("error").await?;
        assert_eq!(e["code"], "invalid_frame", "{f}: {e}");
    }
    Ok(())
}

mod sqlite {
    use super::*;

    #[actix_rt::test]
    async fn routes_and_spec_agree() -> TestResult {
        super::routes_and_spec_agree(TestApp::spawn_tuned("sqlite", with_admin).await?).await
    }

    #[actix_rt::test]
    async fn error_codes_match_the_docs() -> TestResult {
        super::error_codes_match_the_docs(TestApp::spawn("sqlite").await?).await
    }

    #[actix_rt::test]
    async fn spec_is_well_formed() -> TestResult {
        super::spec_is_well_formed(TestApp::spawn("sqlite").await?).await
    }

    #[actix_rt::test]
    async fn every_frame_kind_validates() -> TestResult {
        super::every_frame_kind_validates(TestApp::spawn_tuned("sqlite", with_admin).await?).await
    }
}

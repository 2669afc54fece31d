//! The fuzz targets' checks (fuzz/src/checks.rs, the same file) as a bounded property test, so
//! that the normal suite runs them on stable Rust: arbitrary strings, and inputs built to be
//! nearly valid (frames of every type with odd field values, TOML with the real section and key
//! names, `Authorization` values, forwarding headers and conversation ids) so that the cases
//! reach past the first parse error. `PROPTEST_CASES` overrides the number of cases.

#[allow(dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use proptest::prelude::*;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A JSON scalar or a small structure, as text.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() { f.to_string() } else { "1e999".into() }),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("null".to_owned()),
        ".{0,12}".prop_map(|s| serde_json::Value::String(s).to_string()),
        conv_text().prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("[1,2,3]".to_owned()),
        Just("{}".to_owned()),
    ]
}

/// Conversation ids, mostly near the valid forms.
fn conv_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| format!("d:{a}:{b}")),
        (1..1000i64, 1..1000i64).prop_map(|(a, b)| format!("d:{a}:{b}")),
        any::<i64>().prop_map(|g| format!("g:{g}")),
        "[dg]:[0-9:+-]{0,12}",
        ".{0,16}",
    ]
}

/// Client frames: well-formed ones with odd values, and frames of every type with fields of any
/// JSON type, some left out, some unknown.
fn frame_text() -> impl Strategy<Value = String> {
    let text = || ".{0,70}".prop_map(|s| serde_json::Value::String(s).to_string());
    let conv = || conv_text().prop_map(|s| serde_json::Value::String(s).to_string());
    prop_oneof![
        (text(), conv(), text(), prop::collection::vec(any::<i64>(), 0..3), any::<bool>()).prop_map(
            |(id, conv, body, mentions, all)| {
                let m: Vec<String> = mentions.iter().map(i64::to_string).collect();
                format!(
                    r#"{{"type":"send","id":{id},"conv":{conv},"body":{body},"mentions":[{}],"mention_all":{all}}}"#,
                    m.join(",")
                )
            }
        ),
        (prop::sample::select(vec!["delivered", "read", "recall", "delete"]), conv(), any::<i64>())
            .prop_map(|(t, conv, seq)| format!(r#"{{"type":"{t}","conv":{conv},"seq":{seq}}}"#)),
        (conv(), any::<i64>(), prop::option::of(any::<i64>())).prop_map(|(conv, after, limit)| {
            let limit = limit.map_or("null".to_owned(), |l| l.to_string());
            format!(r#"{{"type":"sync","conv":{conv},"after_seq":{after},"limit":{limit}}}"#)
        }),
        conv().prop_map(|conv| format!(r#"{{"type":"typing","conv":{conv}}}"#)),
        loose_frame_text(),
    ]
}

/// Frames of every type with fields of any JSON type, some left out, some unknown.
fn loose_frame_text() -> impl Strategy<Value = String> {
    let types =
        prop::sample::select(vec!["send", "delivered", "read", "recall", "delete", "typing", "sync", "ping", "nope"]);
    let fields = prop::collection::vec(
        (
            prop::sample::select(vec![
                "id",
                "conv",
                "body",
                "seq",
                "after_seq",
                "limit",
                "nonce",
                "mentions",
                "mention_all",
                "x",
            ]),
            json_value(),
        ),
        0..6,
    );
    (types, fields).prop_map(|(t, fields)| {
        let mut s = format!("{{\"type\":\"{t}\"");
        for (k, v) in fields {
            s.push_str(&format!(",\"{k}\":{v}"));
        }
        s.push('}');
        s
    })
}

/// TOML with the real sections and keys and values of every kind.
fn toml_text() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        ("server", "bind"),
        ("server", "trusted_proxies"),
        ("server", "client_ip_header"),
        ("server", "cors_allowed_origins"),
        ("server", "hsts_max_age_secs"),
        ("server", "workers"),
        ("database", "url"),
        ("database", "pool_size"),
        ("database", "sqlite_synchronous"),
        ("database", "writer_lanes"),
        ("cluster", "redis_url"),
        ("cluster", "node_id"),
        ("cluster", "node_ttl_secs"),
        ("auth", "bcrypt_cost"),
        ("throttle", "enabled"),
        ("throttle", "login_address_burst"),
        ("throttle", "max_tracked_keys"),
        ("log", "format"),
        ("ws", "burst"),
        ("chat", "max_page"),
        ("nope", "nothing"),
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9:/.,*_-]{0,20}".prop_map(|s| format!("\"{s}\"")),
        Just("[\"10.0.0.0/8\", \"::1\"]".to_owned()),
        Just("[\"https://app.example.com\", 5]".to_owned()),
        Just("\"full\"".to_owned()),
        Just("\"json\"".to_owned()),
        Just("{ a = 1 }".to_owned()),
        ".{0,10}",
    ];
    prop::collection::vec((keys, value), 0..6).prop_map(|entries| {
        entries.iter().map(|((section, key), v)| format!("[{section}]\n{key} = {v}\n")).collect::<String>()
    })
}

/// Header values: `Authorization` forms and forwarding lists.
fn token_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(Bearer|bearer|BEARER|Basic|) {0,3}[ -~]{0,40}",
        prop::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
                any::<[u8; 16]>().prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
                Just("10.1.2.3".to_owned()),
                Just("127.0.0.1:8080".to_owned()),
                Just("[::1]:443".to_owned()),
                "[ -~]{0,12}",
            ],
            0..5
        )
        .prop_map(|hops| hops.join(", ")),
        "[0-9a-f.:/]{0,24}",
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn client_frames_any_text(s in ".{0,200}") { checks::client_frame(&s); }

    #[test]
    fn client_frames_nearly_valid(s in frame_text()) { checks::client_frame(&s); }

    #[test]
    fn config_any_text(s in ".{0,200}") { checks::config_toml(&s); }

    #[test]
    fn config_nearly_valid(s in toml_text()) { checks::config_toml(&s); }

    #[test]
    fn tokens_and_headers(s in token_text()) { checks::tokens(&s); }

    #[test]
    fn conversation_ids(s in conv_text()) { checks::conv_id(&s); }
}

/// The generators reach the accepting side too: a property test whose inputs are all refused
/// would check little.
#[test]
fn the_generators_reach_valid_inputs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut frames, mut configs, mut bearers) = (0, 0, 0);
    for _ in 0..2_000 {
        let f = frame_text().new_tree(&mut runner).map(|t| t.current()).unwrap_or_default();
        frames += usize::from(serde_json::from_str::<schema::protocol::ClientFrame>(&f).is_ok());
        let t = toml_text().new_tree(&mut runner).map(|t| t.current()).unwrap_or_default();
        configs += usize::from(!t.is_empty() && server::config::Settings::from_toml(&t, Default::default()).is_ok());
        let b = token_text().new_tree(&mut runner).map(|t| t.current()).unwrap_or_default();
        bearers += usize::from(b.to_ascii_lowercase().starts_with("bearer "));
    }
    assert!(
        frames > 20 && configs > 20 && bearers > 20,
        "valid frames {frames}, configs {configs}, bearer headers {bearers}"
    );
}

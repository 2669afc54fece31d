//! The logger: `env_logger` (levels from `RUST_LOG`, `info` by default), writing lines as text or
//! as JSON (`log.format`).
//!
//! Log calls carry structured fields as the `log` crate's key-values
//! (`log::info!(user = 5, conv = "d:1:2"; "...")`). Text lines show them after the message as
//! `key=value`; JSON lines are one object each: `ts` (RFC 3339, UTC, milliseconds), `level`,
//! `target`, `msg`, every field of the record, and `request_id` when the line was written while
//! an HTTP request was being handled ([`with_request_id`], set by
//! [`crate::middleware::access_log`]).

use std::future::Future;
use std::io::Write;

use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

use crate::config::LogFormat;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the request id of every line it logs.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The request id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Installs the logger (once per process; later calls do nothing).
pub fn init(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        b.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            let line = json_line(record, &ts, current_request_id().as_deref());
            writeln!(buf, "{line}")
        });
    }
    let _ = b.try_init();
}

/// One record as a JSON object on one line.
pub fn json_line(record: &log::Record<'_>, ts: &str, request_id: Option<&str>) -> String {
    let mut obj = Map::new();
    obj.insert("ts".into(), ts.into());
    obj.insert("level".into(), record.level().as_str().into());
    obj.insert("target".into(), record.target().into());
    obj.insert("msg".into(), record.args().to_string().into());
    let mut fields = Fields(Map::new());
    let _ = record.key_values().visit(&mut fields);
    for (k, v) in fields.0 {
        // A field never overwrites the line's own keys.
        obj.entry(k).or_insert(v);
    }
    if let Some(id) = request_id {
        obj.entry("request_id").or_insert_with(|| id.into());
    }
    Json::Object(obj).to_string()
}

struct Fields(Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.insert(key.as_str().to_owned(), to_json(&value));
        Ok(())
    }
}

fn to_json(v: &Value<'_>) -> Json {
    if let Some(b) = v.to_bool() {
        return b.into();
    }
    if let Some(i) = v.to_i64() {
        return i.into();
    }
    if let Some(u) = v.to_u64() {
        return u.into();
    }
    if let Some(f) = v.to_f64() {
        return serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number);
    }
    if let Some(s) = v.to_borrowed_str() {
        return s.into();
    }
    v.to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_has_the_record_and_its_fields() -> Result<(), serde_json::Error> {
        let kvs: [(&str, Value<'_>); 5] = [
            ("user", Value::from(7i64)),
            ("conv", Value::from("d:1:7")),
            ("seq", Value::from(42u64)),
            ("ok", Value::from(true)),
            ("msg", Value::from("a field cannot replace the message")),
        ];
        let args = format_args!("message \"stored\"");
        let record =
            log::Record::builder().args(args).level(log::Level::Info).target("im::chat").key_values(&kvs).build();
        let line = json_line(&record, "2026-01-01T00:00:00.000Z", Some("req-1"));
        assert!(!line.contains('\n'));
        let v: Json = serde_json::from_str(&line)?;
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "im::chat");
        assert_eq!(v["msg"], "message \"stored\"");
        assert_eq!(v["user"], 7);
        assert_eq!(v["conv"], "d:1:7");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["ok"], true);
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["ts"], "2026-01-01T00:00:00.000Z");
        Ok(())
    }

    #[actix_rt::test]
    async fn the_request_id_is_in_scope_while_the_request_runs() {
        assert_eq!(current_request_id(), None);
        let inside = with_request_id("abc".into(), async { current_request_id() }).await;
        assert_eq!(inside.as_deref(), Some("abc"));
        assert_eq!(current_request_id(), None);
    }
}

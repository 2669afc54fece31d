//! Conformance checks every test gets for free:
//!
//! - Every HTTP answer of the API tests goes through [`check_response`] (called by `Http`): its
//!   status must be documented for the operation in the served OpenAPI document, and its JSON
//!   body must validate against that response's schema (so an error code an endpoint does not
//!   list fails the test that provoked it).
//! - Every frame a `WsClient` receives is validated against `$defs/ServerFrame` of the served
//!   `/api/v1/ws-schema.json` ([`check_server_frame`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Http, TestResult};

static SPEC: OnceLock<Value> = OnceLock::new();
static WS_SCHEMA: OnceLock<Value> = OnceLock::new();
static VALIDATORS: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
static FRAME_VALIDATORS: OnceLock<(jsonschema::Validator, jsonschema::Validator)> = OnceLock::new();

/// The served OpenAPI document (fetched once per test process; every server serves the same).
pub async fn spec(http: &Http) -> TestResult<&'static Value> {
    if let Some(s) = SPEC.get() {
        return Ok(s);
    }
    let v = http.get_unchecked("/api/v1/openapi.json").await?;
    Ok(SPEC.get_or_init(|| v))
}

/// The served JSON Schema of the WebSocket frames.
pub async fn ws_schema(http: &Http) -> TestResult<&'static Value> {
    if let Some(s) = WS_SCHEMA.get() {
        return Ok(s);
    }
    let v = http.get_unchecked("/api/v1/ws-schema.json").await?;
    Ok(WS_SCHEMA.get_or_init(|| v))
}

/// Validators of `ClientFrame` and `ServerFrame`, built from the served schema.
pub async fn frame_validators(http: &Http) -> TestResult<&'static (jsonschema::Validator, jsonschema::Validator)> {
    if let Some(v) = FRAME_VALIDATORS.get() {
        return Ok(v);
    }
    let schema = ws_schema(http).await?;
    let defs = schema["$defs"].clone();
    let client = jsonschema::validator_for(&json!({"$ref": "#/$defs/ClientFrame", "$defs": defs.clone()}))
        .map_err(|e| format!("ClientFrame schema: {e}"))?;
    let server = jsonschema::validator_for(&json!({"$ref": "#/$defs/ServerFrame", "$defs": defs}))
        .map_err(|e| format!("ServerFrame schema: {e}"))?;
    Ok(FRAME_VALIDATORS.get_or_init(|| (client, server)))
}

/// Fails unless `frame` (received from the server) validates against `ServerFrame`.
pub fn check_server_frame(validators: &(jsonschema::Validator, jsonschema::Validator), frame: &Value) -> TestResult {
    let errors: Vec<String> =
        validators.1.iter_errors(frame).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("server frame {frame} violates the WebSocket schema: {errors:?}").into())
    }
}

/// The operation of the spec that `method path` (no query string) reaches: its path template
/// and its object. Templates with more literal segments win (`/users/me` over `/users/{id}`).
pub fn operation<'a>(spec: &'a Value, method: &Method, path: &str) -> Option<(String, &'a Value)> {
    let path = path.split('?').next().unwrap_or_default();
    let segs: Vec<&str> = path.split('/').collect();
    let m = method.as_str().to_ascii_lowercase();
    let mut best: Option<(usize, String, &Value)> = None;
    for (template, item) in spec["paths"].as_object()? {
        let Some(op) = item.get(&m) else { continue };
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let fits = t.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if fits && best.as_ref().is_none_or(|(l, ..)| literal > *l) {
            best = Some((literal, template.clone(), op));
        }
    }
    best.map(|(_, t, op)| (t, op))
}

/// Checks one HTTP answer against the spec: the status is documented for the operation and the
/// JSON body validates against the response's schema. Requests no operation matches (unknown
/// routes, methods a path does not have) are not checked here.
pub fn check_response(spec: &Value, method: &Method, path: &str, status: StatusCode, body: &Value) -> TestResult {
    let Some((template, op)) = operation(spec, method, path) else { return Ok(()) };
    let Some(resp) = op["responses"].get(status.as_str()) else {
        return Err(format!("{method} {path}: status {status} is not documented for {template}; body {body}").into());
    };
    if body.is_null() {
        return Ok(());
    }
    let Some(schema) = resp["content"]["application/json"].get("schema") else { return Ok(()) };
    let key = format!("{method} {template} {status}");
    let cache = VALIDATORS.get_or_init(Default::default);
    let validator = {
        let mut cache = cache.lock().map_err(|_| "validator cache poisoned")?;
        match cache.get(&key) {
            Some(v) => v.clone(),
            None => {
                let mut s = schema.clone();
                if let Some(o) = s.as_object_mut() {
                    // `#/components/...` references resolve inside this document.
                    o.insert("components".into(), spec["components"].clone());
                }
                let v = Arc::new(jsonschema::validator_for(&s).map_err(|e| format!("schema of {key}: {e}"))?);
                cache.insert(key.clone(), v.clone());
                v
            }
        }
    };
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{method} {path} -> {status}: the body violates the spec ({key}): {errors:?}; body {body}").into())
    }
}

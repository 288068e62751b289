//! Structured logs: one JSON object per line on the console, so `wrangler tail` and the test
//! harness can filter them. Callers pass only non-secret fields; the provider detail is
//! redacted before it gets here.

use serde_json::Value;

pub(crate) fn info(event: &str, fields: Value) {
    worker::console_log!("{}", line("info", event, fields));
}

pub(crate) fn warn(event: &str, fields: Value) {
    worker::console_warn!("{}", line("warn", event, fields));
}

pub(crate) fn error(event: &str, fields: Value) {
    worker::console_error!("{}", line("error", event, fields));
}

/// A line at a level named by the core (`info`, `warn`, `error`).
pub(crate) fn at(level: &str, event: &str, fields: Value) {
    match level {
        "error" => error(event, fields),
        "warn" => warn(event, fields),
        _ => info(event, fields),
    }
}

fn line(level: &str, event: &str, fields: Value) -> String {
    let mut obj = match fields {
        Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("data".into(), other);
            m
        }
    };
    obj.insert("level".into(), level.into());
    obj.insert("event".into(), event.into());
    Value::Object(obj).to_string()
}

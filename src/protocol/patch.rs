//! RFC 6902 JSON Patch: the `STATE_DELTA` payload. The session computes deltas by diffing its
//! state before and after each step; clients (and tests) apply them with [`apply`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One patch operation. BotArmy emits `add`, `remove` and `replace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
}

impl PatchOp {
    pub fn replace(path: &str, value: Value) -> PatchOp {
        PatchOp::Replace {
            path: path.to_string(),
            value,
        }
    }
}

/// A whole patch, as carried by `STATE_DELTA.delta`.
pub type PatchOpList = Vec<PatchOp>;

/// RFC 6901 token escaping.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The operations that turn `old` into `new`. Objects are diffed key by key; arrays that only
/// grew get `add`s at the end; any other change is a `replace` of the differing value.
pub fn diff(old: &Value, new: &Value) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    diff_into(old, new, &mut String::new(), &mut ops);
    ops
}

fn diff_into(old: &Value, new: &Value, path: &mut String, ops: &mut Vec<PatchOp>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let len = path.len();
                path.push('/');
                path.push_str(&escape(k));
                match b.get(k) {
                    Some(vb) => diff_into(va, vb, path, ops),
                    None => ops.push(PatchOp::Remove { path: path.clone() }),
                }
                path.truncate(len);
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    ops.push(PatchOp::Add {
                        path: format!("{path}/{}", escape(k)),
                        value: vb.clone(),
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if b.len() > a.len() && b[..a.len()] == a[..] => {
            for v in &b[a.len()..] {
                ops.push(PatchOp::Add {
                    path: format!("{path}/-"),
                    value: v.clone(),
                });
            }
        }
        _ => ops.push(PatchOp::Replace {
            path: path.clone(),
            value: new.clone(),
        }),
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError(pub String);

/// Applies `ops` to `doc` in order. On error `doc` may be partly patched; callers that need
/// all-or-nothing apply to a clone.
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> Result<(), PatchError> {
    for op in ops {
        match op {
            PatchOp::Add { path, value } => put(doc, path, value.clone(), true)?,
            PatchOp::Replace { path, value } => put(doc, path, value.clone(), false)?,
            PatchOp::Remove { path } => {
                let (parent, last) = parent_of(doc, path)?;
                match parent {
                    Value::Object(m) => {
                        m.remove(&last)
                            .ok_or_else(|| PatchError(format!("no member at {path}")))?;
                    }
                    Value::Array(a) => {
                        let i = index(&last, a.len())?;
                        a.remove(i);
                    }
                    _ => return Err(PatchError(format!("{path}: parent is not a container"))),
                }
            }
        }
    }
    Ok(())
}

fn put(doc: &mut Value, path: &str, value: Value, add: bool) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_of(doc, path)?;
    match parent {
        Value::Object(m) => {
            if !add && !m.contains_key(&last) {
                return Err(PatchError(format!("replace of missing member {path}")));
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if add && last == "-" {
                a.push(value);
            } else if add {
                let i = index(&last, a.len() + 1)?;
                a.insert(i, value);
            } else {
                let i = index(&last, a.len())?;
                a[i] = value;
            }
        }
        _ => return Err(PatchError(format!("{path}: parent is not a container"))),
    }
    Ok(())
}

fn index(token: &str, bound: usize) -> Result<usize, PatchError> {
    let ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    match token.parse::<usize>() {
        Ok(i) if ok && i < bound => Ok(i),
        _ => Err(PatchError(format!("bad array index {token:?}"))),
    }
}

fn parent_of<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), PatchError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError(format!("path {path:?} must start with '/'")));
    };
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop().unwrap_or_default();
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(&t)
                .ok_or_else(|| PatchError(format!("no member {t:?} in {path}")))?,
            Value::Array(a) => {
                let i = index(&t, a.len())?;
                &mut a[i]
            }
            _ => return Err(PatchError(format!("{path}: walks through a scalar"))),
        };
    }
    Ok((cur, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn diff_emits_minimal_ops() {
        let a = json!({"run": {"status": "idle", "n": 1}, "list": [1], "gone": true});
        let b = json!({"run": {"status": "running", "n": 1}, "list": [1, 2], "new/key": null});
        let ops = diff(&a, &b);
        assert_eq!(
            ops,
            vec![
                PatchOp::Remove {
                    path: "/gone".into()
                },
                PatchOp::Add {
                    path: "/list/-".into(),
                    value: json!(2)
                },
                PatchOp::replace("/run/status", json!("running")),
                PatchOp::Add {
                    path: "/new~1key".into(),
                    value: json!(null)
                },
            ]
        );
        let mut c = a.clone();
        apply(&mut c, &ops).unwrap();
        assert_eq!(c, b);
    }

    #[test]
    fn apply_reports_bad_paths() {
        let mut d = json!({"a": [1, 2]});
        assert!(apply(&mut d, &[PatchOp::replace("/b", json!(1))]).is_err());
        assert!(apply(&mut d, &[PatchOp::replace("/a/5", json!(1))]).is_err());
        assert!(apply(&mut d, &[PatchOp::replace("/a/01", json!(1))]).is_err());
        assert!(apply(&mut d, &[PatchOp::replace("a", json!(1))]).is_err());
        assert!(apply(
            &mut d,
            &[PatchOp::Remove {
                path: "/a/0/x".into()
            }]
        )
        .is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c~/]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c~/]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // A client that applies the deltas holds the same state as a fresh snapshot.
        #[test]
        fn apply_of_diff_reconstructs(a in arb_json(), b in arb_json()) {
            let mut c = a.clone();
            apply(&mut c, &diff(&a, &b)).unwrap();
            prop_assert_eq!(c, b);
        }

        // The reducer never panics on arbitrary patches.
        #[test]
        fn apply_never_panics(doc in arb_json(), ops in proptest::collection::vec(
            (0u8..3, "(/[a-c0-9~-]{0,2}){0,3}", arb_json()), 0..6)) {
            let ops: Vec<PatchOp> = ops.into_iter().map(|(k, path, value)| match k {
                0 => PatchOp::Add { path, value },
                1 => PatchOp::Remove { path },
                _ => PatchOp::Replace { path, value },
            }).collect();
            let mut d = doc;
            let _ = apply(&mut d, &ops);
        }
    }
}

//! Payload filters: conditions on an event that must all hold for an endpoint to get it.
//! A filter is checked and compiled once, when the endpoint is written; fan-out then only
//! evaluates it against each event (`{"type": …, "data": …}`).

use super::Invalid;
use serde_json::Value;

/// A condition's test.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal to the value.
    Eq(Value),
    /// Not equal to the value (a missing field is not equal).
    Ne(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// Equal to none of the values.
    Nin(Vec<Value>),
    /// The field is present (`true`) or absent (`false`).
    Exists(bool),
    /// A string starting with this.
    Prefix(String),
    /// An ordering comparison against a number or a string.
    Compare(Order, Bound),
}

/// Which comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

/// What a comparison compares with: numbers with numbers, strings with strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

/// One condition: a dot path into the event and a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written (`data.author.plan`).
    pub path: String,
    parts: Vec<String>,
    test: Test,
}

/// An endpoint's filter: every condition must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    conditions: Vec<Condition>,
    /// The filter as given (stored, and shown back).
    source: Value,
}

/// At most this many conditions in one filter.
pub const MAX_CONDITIONS: usize = 32;

impl Filter {
    /// Checks and compiles a filter: a JSON list of `{path, op, value?}`. The error names the
    /// bad part (`filter[1].op: …`).
    pub fn parse(source: &Value) -> Result<Self, Invalid> {
        let items = source
            .as_array()
            .ok_or("filter must be a list of conditions")?;
        if items.len() > MAX_CONDITIONS {
            return Err(format!("filter may hold at most {MAX_CONDITIONS} conditions").into());
        }
        let conditions = items
            .iter()
            .enumerate()
            .map(|(i, item)| condition(item).map_err(|e| format!("filter[{i}].{e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            conditions,
            source: source.clone(),
        })
    }

    /// The filter as given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether an event of type `name` with `data` passes.
    pub fn passes(&self, name: &str, data: &Value) -> bool {
        self.conditions.iter().all(|c| {
            let found = lookup(name, data, &c.parts);
            holds(&c.test, found)
        })
    }
}

fn condition(item: &Value) -> Result<Condition, Invalid> {
    let object = item
        .as_object()
        .ok_or("a condition must be an object {path, op, value}")?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "path" | "op" | "value"))
    {
        return Err(format!("{unknown}: unknown field (a condition has path, op, value)").into());
    }
    let path = object
        .get("path")
        .and_then(Value::as_str)
        .ok_or("path: required, a dot path such as data.status")?;
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    let well_formed = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    let rooted = path == "type" || (parts[0] == "data" && parts.len() > 1);
    if !well_formed || !rooted || path.len() > 256 {
        return Err(format!(
            "path: '{path}' must be 'type' or a dot path under 'data' (letters, digits, _ and -)"
        )
        .into());
    }
    let op = object
        .get("op")
        .and_then(Value::as_str)
        .ok_or("op: required, one of eq, ne, in, nin, exists, prefix, gt, gte, lt, lte")?;
    let value = object.get("value");
    let scalar = |v: Option<&Value>| -> Result<Value, Invalid> {
        match v {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)) => {
                Ok(v.clone())
            }
            _ => Err(format!("value: '{op}' takes a string, number, boolean or null").into()),
        }
    };
    let list = |v: Option<&Value>| -> Result<Vec<Value>, Invalid> {
        let items = v
            .and_then(Value::as_array)
            .ok_or(format!("value: '{op}' takes a list"))?;
        items.iter().map(|i| scalar(Some(i))).collect()
    };
    let test = match op {
        "eq" => Test::Eq(scalar(value)?),
        "ne" => Test::Ne(scalar(value)?),
        "in" => Test::In(list(value)?),
        "nin" => Test::Nin(list(value)?),
        "exists" => Test::Exists(
            value
                .and_then(Value::as_bool)
                .ok_or("value: 'exists' takes true or false")?,
        ),
        "prefix" => Test::Prefix(
            value
                .and_then(Value::as_str)
                .ok_or("value: 'prefix' takes a string")?
                .to_owned(),
        ),
        "gt" | "gte" | "lt" | "lte" => {
            let order = match op {
                "gt" => Order::Gt,
                "gte" => Order::Gte,
                "lt" => Order::Lt,
                _ => Order::Lte,
            };
            let bound = match value {
                Some(Value::Number(n)) => Bound::Number(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(s)) => Bound::Text(s.clone()),
                _ => return Err(format!("value: '{op}' takes a number or a string").into()),
            };
            Test::Compare(order, bound)
        }
        other => {
            return Err(format!(
                "op: '{other}' is not one of eq, ne, in, nin, exists, prefix, gt, gte, lt, lte"
            )
            .into());
        }
    };
    Ok(Condition {
        path: path.to_owned(),
        parts,
        test,
    })
}

/// The value at `parts` in the event `{type, data}`; `None` when absent.
fn lookup<'a>(name: &'a str, data: &'a Value, parts: &[String]) -> Option<Found<'a>> {
    match parts.split_first() {
        Some((first, [])) if first == "type" => Some(Found::Name(name)),
        Some((first, rest)) if first == "data" => {
            let mut at = data;
            for part in rest {
                at = match at {
                    Value::Object(map) => map.get(part)?,
                    Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(Found::Json(at))
        }
        _ => None,
    }
}

/// A value found in the event.
#[derive(Clone, Copy)]
enum Found<'a> {
    /// The event's type.
    Name(&'a str),
    /// A value inside `data`.
    Json(&'a Value),
}

impl Found<'_> {
    fn equals(self, v: &Value) -> bool {
        match self {
            Found::Name(n) => v.as_str() == Some(n),
            Found::Json(j) => match (j, v) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => j == v,
            },
        }
    }
}

fn holds(test: &Test, found: Option<Found<'_>>) -> bool {
    match (test, found) {
        (Test::Exists(wanted), found) => found.is_some() == *wanted,
        (_, None) => matches!(test, Test::Ne(_) | Test::Nin(_)),
        (Test::Eq(v), Some(f)) => f.equals(v),
        (Test::Ne(v), Some(f)) => !f.equals(v),
        (Test::In(vs), Some(f)) => vs.iter().any(|v| f.equals(v)),
        (Test::Nin(vs), Some(f)) => !vs.iter().any(|v| f.equals(v)),
        (Test::Prefix(p), Some(f)) => text_of(f).is_some_and(|t| t.starts_with(p.as_str())),
        (Test::Compare(order, bound), Some(f)) => {
            let ordering = match (bound, f) {
                (Bound::Number(b), Found::Json(Value::Number(n))) => {
                    n.as_f64().and_then(|n| n.partial_cmp(b))
                }
                (Bound::Text(b), f) => text_of(f).map(|t| t.cmp(b.as_str())),
                _ => None,
            };
            ordering.is_some_and(|o| match order {
                Order::Gt => o.is_gt(),
                Order::Gte => o.is_ge(),
                Order::Lt => o.is_lt(),
                Order::Lte => o.is_le(),
            })
        }
    }
}

fn text_of(found: Found<'_>) -> Option<&str> {
    match found {
        Found::Name(n) => Some(n),
        Found::Json(Value::String(s)) => Some(s),
        Found::Json(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(v: Value) -> Filter {
        Filter::parse(&v).expect("a valid filter")
    }

    #[test]
    fn every_op_tests_the_value_at_its_path() {
        let data =
            json!({"status": "done", "votes": 12, "author": {"plan": "pro"}, "tags": ["a", "b"]});
        let cases = [
            (
                json!([{"path": "data.status", "op": "eq", "value": "done"}]),
                true,
            ),
            (
                json!([{"path": "data.status", "op": "ne", "value": "done"}]),
                false,
            ),
            (
                json!([{"path": "data.missing", "op": "ne", "value": "x"}]),
                true,
            ),
            (
                json!([{"path": "data.author.plan", "op": "in", "value": ["pro", "team"]}]),
                true,
            ),
            (
                json!([{"path": "data.author.plan", "op": "nin", "value": ["pro"]}]),
                false,
            ),
            (
                json!([{"path": "data.author", "op": "exists", "value": true}]),
                true,
            ),
            (
                json!([{"path": "data.author.seat", "op": "exists", "value": false}]),
                true,
            ),
            (
                json!([{"path": "data.status", "op": "prefix", "value": "do"}]),
                true,
            ),
            (
                json!([{"path": "data.votes", "op": "gt", "value": 10}]),
                true,
            ),
            (
                json!([{"path": "data.votes", "op": "lte", "value": 11.5}]),
                false,
            ),
            (
                json!([{"path": "data.votes", "op": "eq", "value": 12.0}]),
                true,
            ),
            (
                json!([{"path": "data.status", "op": "gte", "value": "a"}]),
                true,
            ),
            (
                json!([{"path": "data.votes", "op": "gt", "value": "1"}]),
                false,
            ),
            (
                json!([{"path": "data.tags.1", "op": "eq", "value": "b"}]),
                true,
            ),
            (
                json!([{"path": "type", "op": "prefix", "value": "post."}]),
                true,
            ),
            (json!([]), true),
            (
                json!([{"path": "data.status", "op": "eq", "value": "done"},
                       {"path": "data.votes", "op": "lt", "value": 5}]),
                false,
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(
                filter(source.clone()).passes("post.updated", &data),
                expected,
                "{source}"
            );
        }
    }

    #[test]
    fn a_bad_filter_is_refused_naming_the_part() {
        let refused = |v: Value| Filter::parse(&v).expect_err("refused").0;
        assert!(refused(json!({"path": "data.x"})).contains("list"));
        assert!(
            refused(json!([{"path": "data.x", "op": "like", "value": 1}]))
                .starts_with("filter[0].op")
        );
        assert!(
            refused(json!([{"path": "meta.x", "op": "eq", "value": 1}]))
                .starts_with("filter[0].path")
        );
        assert!(
            refused(json!([{"path": "data..x", "op": "eq", "value": 1}]))
                .starts_with("filter[0].path")
        );
        assert!(refused(json!([{"op": "eq", "value": 1}])).starts_with("filter[0].path"));
        for path in ["type.x", "data"] {
            let refusal = refused(json!([{"path": path, "op": "exists", "value": true}]));
            assert!(refusal.starts_with("filter[0].path"), "{path}: {refusal}");
        }
        assert!(
            refused(json!([{"path": "data.x", "op": "eq", "value": 1},
                               {"path": "data.x", "op": "in", "value": 1}]))
            .starts_with("filter[1].value")
        );
        assert!(
            refused(json!([{"path": "data.x", "op": "gt", "value": true}]))
                .starts_with("filter[0].value")
        );
        assert!(
            refused(json!([{"path": "data.x", "op": "exists", "value": "yes"}]))
                .starts_with("filter[0].value")
        );
        assert!(refused(json!([{"path": "data.x", "op": "eq"}])).starts_with("filter[0].value"));
        assert!(
            refused(json!([{"path": "data.x", "op": "eq", "value": {"a": 1}}]))
                .starts_with("filter[0].value")
        );
        assert!(
            refused(json!([{"path": "data.x", "op": "eq", "value": 1, "note": "x"}]))
                .starts_with("filter[0].note")
        );
    }
}

//! Checks a positioned YAML tree against a kind's JSON Schema and reports every violation.
//!
//! The schema is the one derived from [`crate::model`], so the Rust types stay the single
//! source of truth; this module understands the subset of JSON Schema that schemars emits for
//! them (`$ref`, `type`, `properties`, `required`, `additionalProperties`, `items`, `const`,
//! `enum`, `oneOf`/`anyOf`, `minimum`/`maximum` and the integer `format`s). Unlike a serde
//! deserializer, which stops at the first error, it walks the whole document.

use serde_json::Value as Json;

use crate::yaml::{Mark, Node, Value};

/// One violation of the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where in the file.
    pub mark: Mark,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious way.
    pub hint: Option<String>,
}

/// Validates `node` against `schema` (a whole schema document with `$defs`).
pub fn validate(schema: &Json, node: &Node) -> Vec<Violation> {
    let mut checker = Checker {
        root: schema,
        violations: Vec::new(),
    };
    checker.check(schema, node, &mut Vec::new());
    checker.violations
}

struct Checker<'s> {
    root: &'s Json,
    violations: Vec<Violation>,
}

/// The path from the document root to a value, for messages: `spec.launch.args[1]`.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn display_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "the document".to_string()
    } else {
        format!("`{out}`")
    }
}

impl<'s> Checker<'s> {
    fn resolve(&self, schema: &'s Json) -> &'s Json {
        let mut schema = schema;
        // Refs in schemars output point at `#/$defs/Name`; follow a bounded chain.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Json::as_str) else {
                break;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|defs| defs.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn report(&mut self, mark: Mark, message: String, hint: Option<String>) {
        self.violations.push(Violation {
            mark,
            message,
            hint,
        });
    }

    fn check(&mut self, schema: &'s Json, node: &Node, path: &mut Vec<Step>) {
        let schema = self.resolve(schema);

        if let Some(choices) = enum_choices(self, schema) {
            let found = scalar_text(node);
            if !choices.iter().any(|c| Some(c.as_str()) == found.as_deref()) {
                let list = choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = match found {
                    Some(ref found) => {
                        format!("{} is `{found}`; expected {list}", display_path(path))
                    }
                    None => format!(
                        "{} must be one of {list}, found {}",
                        display_path(path),
                        node.value.type_name()
                    ),
                };
                let hint = found
                    .as_deref()
                    .and_then(|f| closest(f, choices.iter().map(String::as_str)));
                self.report(
                    node.mark,
                    message,
                    hint.map(|c| format!("did you mean `{c}`?")),
                );
            }
            return;
        }

        for keyword in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(keyword).and_then(Json::as_array) {
                self.check_alternatives(branches, node, path);
                return;
            }
        }

        if let Some(expected) = schema.get("type")
            && !type_matches(expected, &node.value)
        {
            let wanted = describe_types(expected);
            let hint = match (&node.value, wanted.as_str()) {
                (Value::Int(_) | Value::Float(_) | Value::Bool(_), "a string") => {
                    Some("quote the value to make it a string".to_string())
                }
                _ => None,
            };
            self.report(
                node.mark,
                format!(
                    "{} must be {wanted}, found {}",
                    display_path(path),
                    node.value.type_name()
                ),
                hint,
            );
            return;
        }

        match &node.value {
            Value::Map(entries) => self.check_object(schema, node.mark, entries, path),
            Value::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (idx, item) in items.iter().enumerate() {
                        path.push(Step::Index(idx));
                        self.check(item_schema, item, path);
                        path.pop();
                    }
                }
            }
            Value::Int(i) => self.check_integer_range(schema, node.mark, *i, path),
            _ => {}
        }
    }

    fn check_alternatives(&mut self, branches: &'s [Json], node: &Node, path: &mut Vec<Step>) {
        // `Option<T>` becomes `anyOf: [T, {type: null}]`: a null passes, anything else is
        // checked against T alone so that its errors are precise.
        let non_null: Vec<&Json> = branches
            .iter()
            .filter(|b| b.get("type").and_then(Json::as_str) != Some("null"))
            .collect();
        if node.value == Value::Null && non_null.len() < branches.len() {
            return;
        }
        let mut best: Option<Vec<Violation>> = None;
        for branch in &non_null {
            let mut attempt = Checker {
                root: self.root,
                violations: Vec::new(),
            };
            attempt.check(branch, node, path);
            if attempt.violations.is_empty() {
                return;
            }
            if best
                .as_ref()
                .is_none_or(|b| attempt.violations.len() < b.len())
            {
                best = Some(attempt.violations);
            }
        }
        match best {
            Some(violations) => self.violations.extend(violations),
            None => self.report(
                node.mark,
                format!(
                    "{} must not be {}",
                    display_path(path),
                    node.value.type_name()
                ),
                None,
            ),
        }
    }

    fn check_object(
        &mut self,
        schema: &'s Json,
        mark: Mark,
        entries: &[(crate::yaml::Key, Node)],
        path: &mut Vec<Step>,
    ) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
        for (key, value) in entries {
            match properties.and_then(|p| p.get(&key.name)) {
                Some(property_schema) => {
                    path.push(Step::Key(key.name.clone()));
                    self.check(property_schema, value, path);
                    path.pop();
                }
                None if closed => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = match closest(&key.name, known.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!(
                            "allowed here: {}",
                            known
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    let place = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" in {}", display_path(path))
                    };
                    self.report(
                        key.mark,
                        format!("unknown field `{}`{place}", key.name),
                        Some(hint),
                    );
                }
                None => {}
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for name in required.iter().filter_map(Json::as_str) {
                if !entries.iter().any(|(k, _)| k.name == name) {
                    let place = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" in {}", display_path(path))
                    };
                    self.report(
                        mark,
                        format!("missing required field `{name}`{place}"),
                        None,
                    );
                }
            }
        }
    }

    fn check_integer_range(&mut self, schema: &Json, mark: Mark, value: i128, path: &[Step]) {
        let (mut low, mut high) = match schema.get("format").and_then(Json::as_str) {
            Some("uint8") => (0, i128::from(u8::MAX)),
            Some("uint16") => (0, i128::from(u16::MAX)),
            Some("uint32") => (0, i128::from(u32::MAX)),
            Some("uint64" | "uint") => (0, i128::from(u64::MAX)),
            Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
            _ => (i128::from(i64::MIN), i128::from(u64::MAX)),
        };
        if let Some(min) = schema.get("minimum").and_then(Json::as_f64) {
            low = low.max(min.ceil() as i128);
        }
        if let Some(max) = schema.get("maximum").and_then(Json::as_f64) {
            high = high.min(max.floor() as i128);
        }
        if value < low || value > high {
            self.report(
                mark,
                format!(
                    "{} is {value}; expected a whole number from {low} to {high}",
                    display_path(path)
                ),
                None,
            );
        }
    }
}

/// The allowed values when a schema is a plain enumeration of strings.
fn enum_choices(checker: &Checker<'_>, schema: &Json) -> Option<Vec<String>> {
    if let Some(c) = schema.get("const").and_then(Json::as_str) {
        return Some(vec![c.to_string()]);
    }
    if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    let mut choices = Vec::new();
    for branch in branches {
        choices.extend(enum_choices(checker, checker.resolve(branch))?);
    }
    Some(choices)
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn type_matches(expected: &Json, value: &Value) -> bool {
    let one = |t: &str| match t {
        "string" => matches!(value, Value::Str(_)),
        "integer" => matches!(value, Value::Int(_)),
        "number" => matches!(value, Value::Int(_) | Value::Float(_)),
        "boolean" => matches!(value, Value::Bool(_)),
        "null" => matches!(value, Value::Null),
        "array" => matches!(value, Value::Seq(_)),
        "object" => matches!(value, Value::Map(_)),
        _ => true,
    };
    match expected {
        Json::String(t) => one(t),
        Json::Array(types) => types.iter().filter_map(Json::as_str).any(one),
        _ => true,
    }
}

fn describe_types(expected: &Json) -> String {
    let one = |t: &str| match t {
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "null",
        "array" => "a list",
        "object" => "a mapping",
        _ => "something else",
    };
    match expected {
        Json::String(t) => one(t).to_string(),
        Json::Array(types) => {
            let names: Vec<&str> = types
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .map(one)
                .collect();
            names.join(" or ")
        }
        _ => "valid".to_string(),
    }
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .map(|c| (edit_distance(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits plus swaps of neighbours, the usual typos.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let fields = ["name", "title", "description"];
        assert_eq!(closest("nmae", fields.iter().copied()), Some("name"));
        assert_eq!(closest("titel", fields.iter().copied()), Some("title"));
        assert_eq!(closest("colour", fields.iter().copied()), None);
    }
}

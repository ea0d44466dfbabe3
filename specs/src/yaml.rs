//! A bounded YAML reader that keeps the position of every node.
//!
//! Specs are small, but they come from people and may come from anyone with push access, so
//! parsing is bounded: the caller caps the input size, and this module caps nesting depth,
//! the number of nodes (including those an alias expands to, which defeats "billion laughs"),
//! and rejects duplicate keys, non-string keys and multi-document files. Every failure carries
//! a line and column.
//!
//! Scalars are resolved with the YAML 1.2 core schema: `null`/`~`/empty, `true`/`false`,
//! integers and floats for plain scalars; anything quoted is a string.

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a YAML file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub column: u32,
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub mark: Mark,
    /// The value.
    pub value: Value,
}

/// A YAML value whose children carry positions.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits (signed or unsigned).
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// Any other scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in file order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Where the key is written.
    pub mark: Mark,
    /// The key's text.
    pub name: String,
}

/// Why a YAML document could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// Where the problem is.
    pub mark: Mark,
    /// What the problem is, as a lowercase sentence fragment.
    pub message: String,
}

/// Limits on what one document may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes in the document after expanding aliases.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_nodes: 20_000,
        }
    }
}

impl Value {
    /// A short name of the value's type for messages, e.g. "a mapping".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The child at `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON for typed deserialization; positions are dropped.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => {
                if let Ok(i) = i64::try_from(*i) {
                    i.into()
                } else if let Ok(u) = u64::try_from(*i) {
                    u.into()
                } else {
                    // Out of range for JSON integers; `parse` never produces these.
                    serde_json::Value::Null
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn mark_of(marker: Marker) -> Mark {
    // yaml-rust2 reports 1-based lines and 0-based columns.
    Mark {
        line: u32::try_from(marker.line()).unwrap_or(u32::MAX),
        column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
    }
}

/// Parses one YAML document into a positioned tree.
///
/// Returns every duplicate key found, or the first structural error (a syntax error stops the
/// parser, so later problems cannot be seen until it is fixed).
pub fn parse(text: &str, limits: Limits) -> Result<Node, Vec<YamlError>> {
    Builder::new(limits).run(text)
}

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    n_nodes: usize,
    /// How many of `n_nodes` came from expanding aliases.
    n_aliased: usize,
    documents: usize,
    root: Option<Node>,
    duplicate_keys: Vec<YamlError>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: std::collections::HashMap::new(),
            n_nodes: 0,
            n_aliased: 0,
            documents: 0,
            root: None,
            duplicate_keys: Vec::new(),
        }
    }

    fn run(mut self, text: &str) -> Result<Node, Vec<YamlError>> {
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, marker) = match parser.next_token() {
                Ok(next) => next,
                Err(e) => {
                    return Err(vec![YamlError {
                        mark: mark_of(*e.marker()),
                        message: format!("invalid YAML: {}", e.info()),
                    }]);
                }
            };
            let mark = mark_of(marker);
            match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
                Event::DocumentStart => self.document_start(mark)?,
                Event::Alias(id) => self.alias(id, mark)?,
                Event::Scalar(text, style, anchor, tag) => {
                    self.scalar(text, style, anchor, tag, mark)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.count(mark, 1)?;
                    self.enter(mark)?;
                    self.stack.push(Frame::Seq {
                        mark,
                        anchor,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.count(mark, 1)?;
                    self.enter(mark)?;
                    self.stack.push(Frame::Map {
                        mark,
                        anchor,
                        entries: Vec::new(),
                        pending_key: None,
                    });
                }
                Event::SequenceEnd => self.sequence_end(mark)?,
                Event::MappingEnd => self.mapping_end(mark)?,
            }
        }
        if !self.duplicate_keys.is_empty() {
            return Err(self.duplicate_keys);
        }
        match self.root {
            Some(root) => Ok(root),
            None => Err(vec![err(
                Mark { line: 1, column: 1 },
                "the file is empty; expected a spec document",
            )]),
        }
    }

    fn document_start(&mut self, mark: Mark) -> Result<(), Vec<YamlError>> {
        self.documents += 1;
        if self.documents > 1 {
            return Err(vec![YamlError {
                mark,
                message: "a spec file holds exactly one document; found a second \
                          `---` document"
                    .into(),
            }]);
        }
        Ok(())
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<(), Vec<YamlError>> {
        let node = match self.anchors.get(&id) {
            Some(node) => node.clone(),
            None => return Err(vec![err(mark, "alias to an unknown anchor")]),
        };
        let size = count_nodes(&node);
        self.n_aliased = self.n_aliased.saturating_add(size);
        self.count(mark, size)?;
        let node = Node {
            mark,
            value: node.value,
        };
        self.push_value(node)
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        mark: Mark,
    ) -> Result<(), Vec<YamlError>> {
        self.count(mark, 1)?;
        // An empty value (`title:` and then a newline) is marked by yaml-rust2 at the next
        // token, often on a later line; its key is where the reader looks.
        let mark = match self.stack.last() {
            Some(Frame::Map {
                pending_key: Some(key),
                ..
            }) if text.is_empty() && style == TScalarStyle::Plain && tag.is_none() => key.mark,
            _ => mark,
        };
        let value = match tag {
            Some(tag) if !(tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!") => {
                return Err(vec![err(
                    mark,
                    &format!(
                        "custom tag `{}{}` is not supported in specs",
                        tag.handle, tag.suffix
                    ),
                )]);
            }
            Some(tag) if tag.suffix == "str" => Value::Str(text),
            _ => resolve_scalar(text, style),
        };
        let node = Node { mark, value };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push_value(node)
    }

    fn sequence_end(&mut self, mark: Mark) -> Result<(), Vec<YamlError>> {
        match self.stack.pop() {
            Some(Frame::Seq {
                mark,
                anchor,
                items,
            }) => {
                let node = Node {
                    mark,
                    value: Value::Seq(items),
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node)
            }
            _ => Err(vec![err(mark, "unbalanced sequence end")]),
        }
    }

    fn mapping_end(&mut self, mark: Mark) -> Result<(), Vec<YamlError>> {
        match self.stack.pop() {
            Some(Frame::Map {
                mark,
                anchor,
                entries,
                ..
            }) => {
                // yaml-rust2 marks a block mapping at its first `:`; it starts at its first
                // key, which is where "missing field" errors should point.
                let mark = match entries.first() {
                    Some((key, _))
                        if (key.mark.line, key.mark.column) < (mark.line, mark.column) =>
                    {
                        key.mark
                    }
                    _ => mark,
                };
                let node = Node {
                    mark,
                    value: Value::Map(entries),
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node)
            }
            _ => Err(vec![err(mark, "unbalanced mapping end")]),
        }
    }

    fn enter(&self, mark: Mark) -> Result<(), Vec<YamlError>> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(vec![err(
                mark,
                &format!("nesting deeper than {} levels", self.limits.max_depth),
            )]);
        }
        Ok(())
    }

    fn count(&mut self, mark: Mark, n: usize) -> Result<(), Vec<YamlError>> {
        self.n_nodes = self.n_nodes.saturating_add(n);
        if self.n_nodes > self.limits.max_nodes {
            let message = if self.n_aliased > 0 {
                format!(
                    "the document expands to more than {} values through aliases (an alias bomb?)",
                    self.limits.max_nodes
                )
            } else {
                format!(
                    "the document has more than {} values; a spec needs far fewer",
                    self.limits.max_nodes
                )
            };
            return Err(vec![err(mark, &message)]);
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node) -> Result<(), Vec<YamlError>> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let Value::Str(name) = scalar_key_text(node.value) else {
                        return Err(vec![err(node.mark, "mapping keys must be plain strings")]);
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                        self.duplicate_keys.push(YamlError {
                            mark: node.mark,
                            message: format!(
                                "duplicate key `{name}` (first at line {})",
                                first.mark.line
                            ),
                        });
                    }
                    *pending_key = Some(Key {
                        mark: node.mark,
                        name,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

/// Keys are compared as text: `1: x` has key "1". Collections as keys are refused.
fn scalar_key_text(value: Value) -> Value {
    match value {
        Value::Str(s) => Value::Str(s),
        Value::Int(i) => Value::Str(i.to_string()),
        Value::Bool(b) => Value::Str(b.to_string()),
        Value::Float(f) => Value::Str(f.to_string()),
        Value::Null => Value::Str(String::new()),
        other => other,
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_nodes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn err(mark: Mark, message: &str) -> YamlError {
    YamlError {
        mark,
        message: message.to_string(),
    }
}

fn resolve_scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(&text) {
        return Value::Int(i);
    }
    if looks_like_float(&text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    match text.as_str() {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
        _ => Value::Str(text),
    }
}

fn parse_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = digits.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, digits)
    };
    if digits.is_empty() || digits.len() > 40 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    // Keep integers within what JSON consumers can hold.
    if value < i128::from(i64::MIN) || value > i128::from(u64::MAX) {
        return None;
    }
    Some(value)
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    !body.is_empty()
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && body.chars().any(|c| c.is_ascii_digit())
}

/// The 1-based line and column just after `before`, a valid UTF-8 prefix of a file.
pub(crate) fn position_after(before: &[u8]) -> Mark {
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Mark {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        parse(text, Limits::default()).expect("valid YAML")
    }

    fn parse_err(text: &str) -> YamlError {
        parse(text, Limits::default())
            .expect_err("invalid YAML")
            .remove(0)
    }

    #[test]
    fn keeps_positions_of_nested_values() {
        let root = parse_ok("a: 1\nb:\n  c: hello\n  d: [x, y]\n");
        let c = root.at(&["b", "c"]).unwrap();
        assert_eq!(c.mark, Mark { line: 3, column: 6 });
        assert_eq!(c.as_str(), Some("hello"));
        assert_eq!(root.get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let root = parse_ok("a: ~\nb: true\nc: '1'\nd: 1.5\ne: 1.4.0\nf: yes\ng: -3\n");
        assert_eq!(root.get("a").unwrap().value, Value::Null);
        assert_eq!(root.get("b").unwrap().value, Value::Bool(true));
        assert_eq!(root.get("c").unwrap().value, Value::Str("1".into()));
        assert_eq!(root.get("d").unwrap().value, Value::Float(1.5));
        assert_eq!(root.get("e").unwrap().value, Value::Str("1.4.0".into()));
        assert_eq!(root.get("f").unwrap().value, Value::Str("yes".into()));
        assert_eq!(root.get("g").unwrap().value, Value::Int(-3));
    }

    #[test]
    fn reports_every_duplicate_key() {
        let errors = parse("a: 1\nb: 2\na: 3\nb: 4\n", Limits::default()).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].mark.line, 3);
        assert!(
            errors[0].message.contains("duplicate key `a`"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[1].mark.line, 4);
    }

    #[test]
    fn syntax_error_has_a_position() {
        let e = parse_err("a: [1, 2\nb: 3\n");
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        assert!(e.mark.line >= 1);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "l{i}: &l{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                p = if i == 1 {
                    "a".to_string()
                } else {
                    format!("l{}", i - 1)
                }
            ));
        }
        let e = parse_err(&text);
        assert!(e.message.contains("alias bomb"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let text = "[".repeat(100_000);
        let e = parse_err(&text);
        assert!(
            e.message.contains("nesting") || e.message.contains("invalid YAML"),
            "{}",
            e.message
        );
        let text = (0..200)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect::<String>();
        let e = parse_err(&text);
        assert!(e.message.contains("nesting deeper"), "{}", e.message);
    }

    #[test]
    fn second_document_is_refused() {
        let e = parse_err("a: 1\n---\nb: 2\n");
        assert!(e.message.contains("exactly one document"), "{}", e.message);
    }

    #[test]
    fn empty_file_is_refused() {
        assert!(parse_err("").message.contains("empty"));
        assert!(parse_err("# only a comment\n").message.contains("empty"));
    }
}

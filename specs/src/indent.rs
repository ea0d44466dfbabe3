//! The line at fault when a YAML file does not parse because of its indentation, with what
//! to do about it.
//!
//! A YAML parser reports where it gave up, which is often the line after the mistake or a
//! column that says little ("mapping values are not allowed in this context"). People's
//! mistakes with indentation are few: a tab, a line indented deeper than the line above
//! although that line already has its value, a line indented to no level of the lines above.
//! [`indentation_fault`] looks for these on and just before the line the parser named.

/// An indentation mistake: where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndentFault {
    /// The line at fault, 1-based.
    pub line: u32,
    /// The column of its first character, 1-based.
    pub column: u32,
    /// What to do, as a sentence fragment.
    pub hint: String,
}

/// How many lines before the parser's line a mistake may be and still explain its error.
const LINES_BEFORE: u32 = 2;

/// The indentation mistake that explains a parse error on `error_line` (1-based) of `text`,
/// if there is one: the last one found on that line or the `LINES_BEFORE` lines before it.
pub fn indentation_fault(text: &str, error_line: u32) -> Option<IndentFault> {
    let mut last_fault = None;
    // The indents of the open levels, innermost last; a list item opens two: its dash and
    // its content.
    let mut levels: Vec<usize> = vec![0];
    let mut previous: Option<Line> = None;
    let mut block_scalar_indent: Option<usize> = None;
    for (line_idx, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(line_idx + 1).unwrap_or(u32::MAX);
        if line_no > error_line {
            break;
        }
        let content = raw.trim_start_matches([' ', '\t']);
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let leading = &raw[..raw.len() - content.len()];
        let indent = leading.len();
        if let Some(opener) = block_scalar_indent {
            if indent > opener {
                continue;
            }
            block_scalar_indent = None;
        }
        if leading.contains('\t') {
            last_fault = Some(IndentFault {
                line: line_no,
                column: 1,
                hint: "this line is indented with a tab; YAML indents with spaces only".into(),
            });
            continue;
        }
        let line = Line::new(line_no, indent, content);
        let column = u32::try_from(indent + 1).unwrap_or(u32::MAX);
        if let Some(above) = &previous {
            if indent > above.indent {
                let continues_item = above.item_content == Some(indent);
                if !above.opens_block && !continues_item {
                    let fix = match above.item_content {
                        Some(item) => format!("{item} spaces, like the item's first key"),
                        None => format!("{} spaces, like `{}`", above.indent, above.key_or_text()),
                    };
                    last_fault = Some(IndentFault {
                        line: line_no,
                        column,
                        hint: format!(
                            "this line is indented deeper than line {}, which already has its \
                             value; indent it by {fix}",
                            above.line
                        ),
                    });
                }
                levels.push(indent);
            } else if indent < above.indent {
                while levels.last().is_some_and(|&level| level > indent) {
                    levels.pop();
                }
                if levels.last() != Some(&indent) {
                    let outer = levels.last().copied().unwrap_or(0);
                    last_fault = Some(IndentFault {
                        line: line_no,
                        column,
                        hint: format!(
                            "this line is indented by {indent} spaces, which lines up with no \
                             line above it; indent it by {outer} spaces to end the block above, \
                             or by {} to stay in it",
                            above.indent
                        ),
                    });
                    levels.push(indent);
                }
            }
        }
        if let Some(item) = line.item_content {
            levels.push(item);
        }
        if line.opens_block_scalar {
            block_scalar_indent = Some(indent);
        }
        previous = Some(line);
    }
    last_fault.filter(|fault| fault.line + LINES_BEFORE >= error_line)
}

/// A line with content, as far as indentation goes.
struct Line<'a> {
    line: u32,
    indent: usize,
    content: &'a str,
    /// Whether more deeply indented lines may follow: it ends with `key:` or is a bare `-`.
    opens_block: bool,
    /// Whether it starts a `|` or `>` block scalar, whose lines are text.
    opens_block_scalar: bool,
    /// For a list item `- …`, the column of what follows the dash (0-based), where the
    /// item's next keys line up.
    item_content: Option<usize>,
}

impl<'a> Line<'a> {
    fn new(line: u32, indent: usize, content: &'a str) -> Line<'a> {
        let code = strip_comment(content).trim_end();
        let opens_block = code.ends_with(':') || code == "-";
        let last_word = code.rsplit([' ', ':']).next().unwrap_or_default();
        let opens_block_scalar = (code.contains(": ")
            && matches!(last_word.chars().next(), Some('|' | '>'))
            && last_word.len() <= 3)
            || matches!(code, "|" | ">" | "- |" | "- >");
        let item_content = code
            .strip_prefix("- ")
            .map(|rest| indent + 2 + (rest.len() - rest.trim_start().len()));
        Line {
            line,
            indent,
            content,
            opens_block,
            opens_block_scalar,
            item_content,
        }
    }

    /// The key of a `key: value` line, or the line's text, for a hint.
    fn key_or_text(&self) -> &str {
        let code = strip_comment(self.content).trim_end();
        match code.split_once(':') {
            Some((key, _)) => key.trim_start_matches("- ").trim(),
            None => code,
        }
    }
}

/// `content` without a trailing ` # comment` (a `#` inside quotes is kept).
fn strip_comment(content: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (idx, c) in content.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '#') if previous == ' ' => return &content[..idx],
            _ => {}
        }
        previous = c;
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault found for an error on `error_line`: (line, hint).
    fn fault(text: &str, error_line: u32) -> Option<(u32, String)> {
        indentation_fault(text, error_line).map(|fault| (fault.line, fault.hint))
    }

    #[test]
    fn a_line_deeper_than_a_value_is_at_fault() {
        let text = "kind: User\nspec:\n  role: user\n   disabled: true\n";
        let (line, hint) = fault(text, 4).unwrap();
        assert_eq!(line, 4);
        assert!(hint.contains("deeper than line 3"), "{hint}");
        assert!(hint.contains("2 spaces, like `role`"), "{hint}");
    }

    #[test]
    fn a_line_between_two_levels_is_at_fault() {
        let text = "kind: User\nspec:\n    role: user\n  disabled: true\n";
        let (line, hint) = fault(text, 4).unwrap();
        assert_eq!(line, 4);
        assert!(
            hint.contains("by 2 spaces, which lines up with no line"),
            "{hint}"
        );
        assert!(
            hint.contains("by 0 spaces") && hint.contains("or by 4"),
            "{hint}"
        );
    }

    #[test]
    fn a_tab_is_at_fault_even_when_the_parser_stops_a_line_later() {
        let text = "kind: Game\nspec:\n\ttitle: Doom\n  public: true\n";
        let (line, hint) = fault(text, 4).unwrap();
        assert_eq!(line, 3);
        assert!(hint.contains("tab"), "{hint}");
    }

    #[test]
    fn good_indentation_has_no_fault() {
        let texts = [
            "a: 1\nb:\n  c: 2\n  d:\n    - x\n    - y: 1\n      z: 2\ne: 3\n",
            "spec:\n  grants:\n  - alice\n  - bob\n  notes: |\n    text\n      more\n  x: 1\n",
            "# comment\nspec:   # here\n  title: \"a # b\"\n  # inner\n  public: true\n",
            "list:\n- name: a\n  value: 1\n-\n  name: b\n",
        ];
        for text in texts {
            let n_lines = text.lines().count() as u32;
            assert_eq!(fault(text, n_lines), None, "{text}");
        }
    }

    #[test]
    fn a_fault_far_above_the_error_is_not_claimed() {
        let text = "a: 1\n   b: 2\nc: 3\nd: 4\ne: 5\nf: [\n";
        assert_eq!(fault(text, 6), None);
        assert_eq!(fault(text, 2).map(|(line, _)| line), Some(2));
    }
}

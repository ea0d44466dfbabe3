//! `Range`, `If-Range` and `If-None-Match` for downloads (RFC 9110, sections 13 and 14), as
//! pure functions of the header values, the entity tag and the length.

/// What to send for a `GET` of a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
    /// `200 OK` with the whole body.
    Whole,
    /// `206 Partial Content` with bytes `start..=end`.
    Partial {
        /// The first byte.
        start: u64,
        /// The last byte, inclusive.
        end: u64,
    },
    /// `416 Range Not Satisfiable` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The headers that decide the answer, as received.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Conditions<'a> {
    pub(crate) range: Option<&'a str>,
    pub(crate) if_range: Option<&'a str>,
    pub(crate) if_none_match: Option<&'a str>,
}

/// Decides the answer for a `GET` of a representation whose strong entity tag is `etag`
/// (quoted, e.g. `"blake3:…"`) and whose length is `len`.
///
/// - `If-None-Match` listing the tag (weak comparison) or `*`: not modified.
/// - `If-Range` with anything but exactly the tag (a date, a weak or other tag): the range
///   is ignored and the whole body sent, since the client's partial copy may be of
///   something else.
/// - `Range` in another unit than `bytes`: ignored.
/// - one byte range, `a-b`, `a-` or `-n`: partial; an end past the length is cut to it, and
///   a suffix longer than the representation is the whole of it.
/// - a malformed range, several ranges (multipart answers are not offered), a start at or
///   past the end, `-0`, or any range of an empty representation: unsatisfiable.
pub(crate) fn answer(conditions: Conditions<'_>, etag: &str, len: u64) -> Answer {
    if let Some(if_none_match) = conditions.if_none_match
        && if_none_match_matches(if_none_match, etag)
    {
        return Answer::NotModified;
    }
    let Some(range) = conditions.range else {
        return Answer::Whole;
    };
    if let Some(if_range) = conditions.if_range
        && if_range.trim() != etag
    {
        return Answer::Whole;
    }
    let range = range.trim();
    let Some((unit, ranges)) = range.split_once('=') else {
        return Answer::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Answer::Whole;
    }
    if ranges.contains(',') {
        return Answer::Unsatisfiable;
    }
    let Some((first, last)) = ranges.trim().split_once('-') else {
        return Answer::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    if len == 0 {
        return Answer::Unsatisfiable;
    }
    if first.is_empty() {
        // A suffix: the last n bytes.
        return match parse_digits(last) {
            Some(0) | None => Answer::Unsatisfiable,
            Some(n) => Answer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some(start) = parse_digits(first) else {
        return Answer::Unsatisfiable;
    };
    let end = if last.is_empty() {
        len - 1
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end.min(len - 1),
            _ => return Answer::Unsatisfiable,
        }
    };
    if start >= len {
        return Answer::Unsatisfiable;
    }
    Answer::Partial { start, end }
}

/// Digits only (no sign, no spaces inside), at most what fits in a `u64`.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether an `If-None-Match` value names `etag` (weak comparison: `W/` is ignored) or is `*`.
fn if_none_match_matches(value: &str, etag: &str) -> bool {
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"blake3:ab\"";

    fn check(range: Option<&str>, if_range: Option<&str>, inm: Option<&str>, len: u64) -> Answer {
        answer(
            Conditions {
                range,
                if_range,
                if_none_match: inm,
            },
            TAG,
            len,
        )
    }

    #[test]
    fn ranges() {
        use Answer::*;
        let cases: &[(&str, u64, Answer)] = &[
            ("bytes=0-9", 100, Partial { start: 0, end: 9 }),
            ("bytes=10-", 100, Partial { start: 10, end: 99 }),
            ("bytes=-10", 100, Partial { start: 90, end: 99 }),
            ("bytes=-1000", 100, Partial { start: 0, end: 99 }),
            ("bytes=50-1000", 100, Partial { start: 50, end: 99 }),
            ("bytes=99-99", 100, Partial { start: 99, end: 99 }),
            ("bytes = 1-2", 100, Partial { start: 1, end: 2 }),
            ("BYTES=1-2", 100, Partial { start: 1, end: 2 }),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=5-3", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=0-1,5-6", 100, Unsatisfiable),
            ("bytes=a-b", 100, Unsatisfiable),
            ("bytes=-", 100, Unsatisfiable),
            ("bytes=+1-2", 100, Unsatisfiable),
            ("bytes=1", 100, Unsatisfiable),
            ("bytes=99999999999999999999-", 100, Unsatisfiable),
            ("bytes", 100, Unsatisfiable),
            ("items=0-1", 100, Whole),
        ];
        for (range, len, expected) in cases {
            assert_eq!(
                check(Some(range), None, None, *len),
                *expected,
                "{range} of {len}"
            );
        }
        assert_eq!(check(None, None, None, 100), Whole);
    }

    #[test]
    fn conditionals() {
        use Answer::*;
        assert_eq!(check(None, None, Some(TAG), 100), NotModified);
        assert_eq!(check(None, None, Some("W/\"blake3:ab\""), 100), NotModified);
        assert_eq!(
            check(None, None, Some("\"x\", \"blake3:ab\""), 100),
            NotModified
        );
        assert_eq!(check(None, None, Some("*"), 100), NotModified);
        assert_eq!(check(Some("bytes=0-1"), None, Some(TAG), 100), NotModified);
        assert_eq!(check(None, None, Some("\"other\""), 100), Whole);
        let partial = Partial { start: 0, end: 1 };
        assert_eq!(check(Some("bytes=0-1"), Some(TAG), None, 100), partial);
        assert_eq!(
            check(Some("bytes=0-1"), Some("\"other\""), None, 100),
            Whole
        );
        assert_eq!(
            check(Some("bytes=0-1"), Some("W/\"blake3:ab\""), None, 100),
            Whole
        );
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(check(Some("bytes=0-1"), Some(date), None, 100), Whole);
        assert_eq!(check(None, Some("\"other\""), None, 100), Whole);
    }
}

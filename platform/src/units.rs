//! Amounts as people read them: sizes in decimal units, and counts whose noun agrees
//! with the number (`1 file`, `2 files`).

/// Bytes in decimal units with one decimal, e.g. `12.3 MB` (`999 B` below a kilobyte).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit_idx = 0;
    while value >= 999.95 && unit_idx + 1 < UNITS.len() {
        value /= 1000.0;
        unit_idx += 1;
    }
    format!("{value:.1} {}", UNITS[unit_idx])
}

/// `n` and the noun, with an `s` unless `n` is one: `1 file`, `0 files`, `3 versions`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::{count, human_size};

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(2, "version"), "2 versions");
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1000), "1.0 kB");
        assert_eq!(human_size(76_965_505), "77.0 MB");
        assert_eq!(human_size(999_999_999), "1.0 GB");
        assert_eq!(human_size(2_500_000_000_000), "2.5 TB");
    }
}

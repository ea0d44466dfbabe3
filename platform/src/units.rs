//! Amounts as people read them.

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

#[cfg(test)]
mod tests {
    use super::human_size;

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

//! The grammars of config values that are not names (image, repository, tag, bucket and ECS
//! names are `reference.rs`'s): relative paths, durations such as `reuse_max_age`, and sizes
//! such as `cache_mount_max_size`.

/// A duration written as a number and a unit: `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| "write a number and a unit: 90s, 30m, 12h, 7d or 2w".to_string())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err("the unit must be s, m, h, d or w (e.g. 7d)".into()),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| "too long".to_string())
}

/// A size written as a number and a unit: `500MB`, `2GiB` (`KB`, `MB`, `GB`, `TB` count in
/// thousands, `KiB`, `MiB`, `GiB`, `TiB` in 1024s; `B` or no unit: bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| "write a number and a unit: 500MB, 2GiB".to_string())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(
                "the unit must be B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 2GiB)".into(),
            );
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| "too large".to_string())
}

/// `90s` as `(90, "s")`: the leading digits and what follows them; `None` without digits.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// Normalizes a relative path as Go's `filepath.Clean` would, and refuses paths that are absolute
/// or climb out of the project root.
pub fn clean_relative(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(format!(
            "`{path}` must be a relative path with `/` separators"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{path}` leaves the project root"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size(" 3 KiB "), Ok(3072));
        for bad in ["", "GiB", "2 parsecs", "-1GB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("7d"),
            Ok(std::time::Duration::from_secs(604_800))
        );
        assert_eq!(
            parse_duration("2w"),
            Ok(std::time::Duration::from_secs(1_209_600))
        );
        for bad in ["", "7", "d", "7y", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clean_paths() {
        let cases = [
            ("./a/../b", "b"),
            ("foo/", "foo"),
            (".", "."),
            ("a//b/./c", "a/b/c"),
            ("a/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean_relative(input).as_deref(), Ok(want), "{input}");
        }
        assert!(clean_relative("a/../../b").is_err());
        assert!(clean_relative("/abs").is_err());
    }
}

//! Subscription glob patterns over stream-root-relative paths (PROTOCOL §6.2):
//! `*` matches exactly one path segment, `**` matches zero or more segments.
//! Inside a segment, `*` also matches any run of characters (`log-*`).

/// True when `pattern` is a usable glob: non-empty, no empty segments.
pub fn is_valid(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.starts_with('/') && pattern.split('/').all(|s| !s.is_empty())
}

/// True when `path` (segments separated by `/`) matches `pattern`.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    match_from(&pat, &segs)
}

fn match_from(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|skip| match_from(rest, &segs[skip..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, more)) => segment_matches(p, s) && match_from(rest, more),
            None => false,
        },
    }
}

/// `*` inside a segment matches any run of characters (not `/`).
fn segment_matches(pattern: &str, segment: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == segment;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !segment.starts_with(first)
        || segment.len() < first.len() + last.len()
        || !segment.ends_with(last)
    {
        return false;
    }
    let mut rest = &segment[first.len()..segment.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_double_stars() {
        assert!(matches("events/*", "events/abc"));
        assert!(!matches("events/*", "events/a/b"));
        assert!(!matches("events/*", "events"));
        assert!(matches("events/**", "events"));
        assert!(matches("events/**", "events/a/b/c"));
        assert!(matches("**/logs", "a/b/logs"));
        assert!(matches("**", "anything/at/all"));
        assert!(matches("a/**/z", "a/z"));
        assert!(matches("a/**/z", "a/b/c/z"));
        assert!(!matches("a/**/z", "a/b/c"));
        assert!(matches("log-*", "log-2026"));
        assert!(!matches("log-*", "blog-2026"));
        assert!(matches("a*c*e", "abcde"));
        assert!(!is_valid(""));
        assert!(!is_valid("a//b"));
        assert!(is_valid("events/*"));
    }
}

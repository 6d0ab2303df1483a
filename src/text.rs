//! Plain-text layout helpers shared by the reports.

/// Greedy word wrap; a single word longer than `width` stays whole.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let needed = cur.chars().count() + usize::from(!cur.is_empty()) + word.chars().count();
        if !cur.is_empty() && needed > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Longest piece of user input an error message quotes back.
pub const QUOTED_MAX: usize = 40;

/// At most 40 characters of what the user gave, "…" when cut: an error
/// never echoes a huge value back.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTED_MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// `message` on one line, with every quoted part ("…", `…`) clipped to 40
/// characters: for messages of parsers (TOML, JSON) that quote the input.
pub fn clip_quoted(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    let mut rest = one_line.as_str();
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let inner = &rest[open + 1..];
        match inner.find(quote) {
            Some(close) => {
                out.push_str(&clip(&inner[..close]));
                out.push(quote);
                rest = &inner[close + 1..];
            }
            None => {
                out.push_str(&clip(inner));
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_are_clipped() {
        let long = "x".repeat(100);
        assert_eq!(
            clip_quoted(&format!("invalid type: string \"{long}\", expected u32")),
            format!("invalid type: string \"{}…\", expected u32", "x".repeat(40))
        );
        assert_eq!(
            clip_quoted(&format!("unknown variant `{long}`, expected `a`")),
            format!("unknown variant `{}…`, expected `a`", "x".repeat(40))
        );
        assert_eq!(clip_quoted("a\n  b \"c\""), "a b \"c\"");
        assert_eq!(
            clip_quoted(&format!("open \"{long}")),
            format!("open \"{}…", "x".repeat(40))
        );
    }

    #[test]
    fn wrap_respects_width() {
        assert_eq!(wrap("aaa bbb ccc ddd", 7), ["aaa bbb", "ccc ddd"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("abcdefghij", 4), ["abcdefghij"]);
    }
}

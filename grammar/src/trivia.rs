//! Comments as the lexer sees them: found outside string literals, so the
//! parser can trim them off spans and the formatter can keep them.

/// A comment: `start..end` bytes (a line comment ends before its newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    /// First byte (`/`).
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// False for a `/*` that is never closed (it then runs to the end).
    pub closed: bool,
}

/// Every `//` and `/* */` comment of `src`, in order.
pub fn comments(src: &str) -> Vec<Comment> {
    let b = src.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'"', _) => {
                i = src[i + 1..]
                    .find(['"', '\n'])
                    .map_or(b.len(), |n| i + n + 2)
            }
            (b'/', Some(b'/')) => {
                let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
                out.push(Comment {
                    start: i,
                    end,
                    closed: true,
                });
                i = end;
            }
            (b'/', Some(b'*')) => {
                let close = src[i + 2..].find("*/").map(|n| i + 2 + n + 2);
                out.push(Comment {
                    start: i,
                    end: close.unwrap_or(b.len()),
                    closed: close.is_some(),
                });
                i = close.unwrap_or(b.len());
            }
            _ => i += 1,
        }
    }
    out
}

/// `text` without its trailing whitespace and comments (`text` starts at a token).
pub fn trim_end(text: &str) -> &str {
    let found = comments(text);
    let mut t = text.trim_end();
    while let Some(c) = found.iter().find(|c| c.start < t.len() && c.end >= t.len()) {
        t = text[..c.start].trim_end();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_inside_strings_are_not_comments() {
        let c = comments("scene \"a // b /* c\" // real\nx /* block */ y /* open");
        let texts: Vec<bool> = c.iter().map(|c| c.closed).collect();
        assert_eq!(c.len(), 3);
        assert_eq!(texts, [true, true, false]);
    }

    #[test]
    fn trailing_comments_of_both_kinds_are_trimmed() {
        assert_eq!(trim_end("fix a, b  /* x */ // y\n  "), "fix a, b");
        assert_eq!(
            trim_end("scene \"// not a comment\"  "),
            "scene \"// not a comment\""
        );
    }
}

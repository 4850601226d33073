//! Share-relative paths: how callers name a path in a tree, and how reports show one.
//!
//! Inside the history code a path is bytes in canonical form: `/` for the root, `/a/b` below
//! it. Names are bytes (POSIX allows any but `/` and NUL), so a report cannot simply hold them
//! as strings. [`escape_path`] renders a path losslessly and on one line: valid UTF-8 stays as
//! it is except that `\` is doubled, and every byte that is not part of valid UTF-8, or is part
//! of a control character (U+0000 to U+001F, U+007F to U+009F: a newline, a tab, an escape
//! sequence), becomes `\xNN` (two lower-case hex digits). [`unescape_path`] reverses it, so
//! two paths never render alike, and a name can neither split a report's line nor drive a
//! terminal.

use super::HistoryError;

/// The names of a share-relative, `/`-separated path, root first. The leading `/` is optional
/// and empty components (`a//b`, a trailing `/`) are ignored, so `""` and `"/"` both name the
/// root. `.` and `..` are refused: no tree has such entries, and finding nothing would hide the
/// mistake.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, HistoryError> {
    let names: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|name| !name.is_empty())
        .collect();
    if names.iter().any(|name| *name == b"." || *name == b"..") {
        return Err(HistoryError::InvalidPath {
            path: escape_path(path),
            reason: "'.' and '..' are not allowed",
        });
    }
    Ok(names)
}

/// The canonical path of `name` in the directory at canonical path `parent`.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    if parent != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The canonical path of a list of names (the root for none). Built in one buffer: a path may
/// have as many names as a tree has levels, so joining them one by one would be quadratic.
pub fn canonical(names: &[&[u8]]) -> Vec<u8> {
    if names.is_empty() {
        return b"/".to_vec();
    }
    let mut path = Vec::with_capacity(names.iter().map(|name| name.len() + 1).sum());
    for name in names {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    path
}

/// Renders a path for a report (see the module documentation for the rule).
pub fn escape_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut utf8 = [0; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The bytes of a path rendered by [`escape_path`]; `None` for a string it cannot produce.
pub fn unescape_path(escaped: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match rest {
            [b'\\', tail @ ..] => {
                out.push(b'\\');
                rest = tail;
            }
            [b'x', high, low, tail @ ..] => {
                out.push(hex_digit(*high)? << 4 | hex_digit(*low)?);
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The value of a lower-case hex digit, as [`escape_path`] writes them.
fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn components_and_joins() {
        assert!(components(b"").unwrap().is_empty());
        assert!(components(b"/").unwrap().is_empty());
        assert_eq!(
            components(b"/docs//report.txt/").unwrap(),
            [&b"docs"[..], b"report.txt"]
        );
        assert_eq!(components(b"docs").unwrap(), [&b"docs"[..]]);
        assert!(components(b"/a/../b").is_err());
        assert!(components(b"./a").is_err());
        assert_eq!(join(b"/", b"a"), b"/a");
        assert_eq!(join(b"/a", b"b"), b"/a/b");
        assert_eq!(canonical(&[]), b"/");
        assert_eq!(canonical(&[b"a", b"b"]), b"/a/b");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_path("/dir/ü.txt".as_bytes()), "/dir/ü.txt");
        assert_eq!(escape_path(b"/a\\b"), "/a\\\\b");
        assert_eq!(escape_path(b"/caf\xe9"), "/caf\\xe9");
        // Control characters would split a line or drive a terminal.
        assert_eq!(escape_path(b"/two\nlines"), "/two\\x0alines");
        assert_eq!(escape_path(b"/\t\x1b[31m\x7f"), "/\\x09\\x1b[31m\\x7f");
        assert_eq!(escape_path("/c1\u{85}".as_bytes()), "/c1\\xc2\\x85");
        assert_eq!(
            unescape_path("/two\\x0alines"),
            Some(b"/two\nlines".to_vec())
        );
        // A UTF-8 name that looks like an escape stays distinct from the escaped byte.
        assert_ne!(escape_path(b"/\\xe9"), escape_path(b"/\xe9"));
        assert_eq!(unescape_path("/a\\q"), None);
        assert_eq!(unescape_path("/a\\xE9"), None);
        assert_eq!(unescape_path("/a\\x4"), None);
        assert_eq!(unescape_path("/a\\x+f"), None);
    }

    proptest! {
        #[test]
        fn escaping_is_lossless(path in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unescape_path(&escape_path(&path)), Some(path));
        }
    }
}

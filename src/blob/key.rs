//! Blob keys: the names of objects inside a backend, checked once so that no backend has to
//! worry about `..`, absolute paths or characters an object store would escape.

use std::fmt;

/// A relative key: `/`-separated components of `[A-Za-z0-9._-]`, none empty, `.` or `..`;
/// at most 512 bytes. Maps one to one onto a relative path and an S3 key suffix.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

const MAX_KEY_LEN: usize = 512;

impl BlobKey {
    /// `None` if `key` breaks the rules above.
    pub fn new(key: &str) -> Option<Self> {
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.split('/').all(|component| {
                !component.is_empty()
                    && component != "."
                    && component != ".."
                    && component
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        valid.then(|| BlobKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.0)
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_relative_names() {
        for good in ["config", "data/ab/0123", "index/a.b-c_d"] {
            assert!(BlobKey::new(good).is_some(), "{good}");
        }
        for bad in [
            "", "/abs", "a//b", "a/", "..", "a/../b", "./a", "sp ace", "a\\b", "ü",
        ] {
            assert!(BlobKey::new(bad).is_none(), "{bad:?}");
        }
        assert!(BlobKey::new(&"a".repeat(513)).is_none());
    }
}

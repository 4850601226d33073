//! Paths in requests are bytes, as POSIX names are: a name need not be UTF-8. This is how such
//! a path travels:
//! - on the command line, as the bytes of the argument (an `OsString`);
//! - in a word-form control-file line, as the bytes of the word (the line itself need not be
//!   UTF-8);
//! - in JSON (what the `snapfs` command sends to a daemon), as a string when the path is valid
//!   UTF-8, which means exactly its characters with no escapes of its own, and otherwise as an
//!   array of byte values (`[99,97,102,233]` for `caf\xe9`). Both forms are accepted for any
//!   path, so every JSON request of earlier versions keeps its meaning.
//!
//! Reports render paths with [`escape_path`](crate::history::path::escape_path).

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use clap::builder::TypedValueParser;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::history::path::escape_path;

/// A path inside the share, as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BytePath(pub Vec<u8>);

impl BytePath {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for BytePath {
    fn from(text: &str) -> Self {
        BytePath(text.as_bytes().to_vec())
    }
}

/// Rendered as reports render paths: lossless, one line, printable.
impl fmt::Display for BytePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_path(&self.0))
    }
}

fn from_os(arg: OsString) -> BytePath {
    BytePath(arg.into_vec())
}

/// clap takes the argument's bytes as they are.
impl clap::builder::ValueParserFactory for BytePath {
    type Parser =
        clap::builder::MapValueParser<clap::builder::OsStringValueParser, fn(OsString) -> Self>;

    fn value_parser() -> Self::Parser {
        clap::builder::OsStringValueParser::new().map(from_os as fn(OsString) -> Self)
    }
}

fn serialize_bytes<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.collect_seq(bytes),
    }
}

/// Takes a path in either JSON form.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a path: a string, or an array of byte values")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        Ok(text.as_bytes().to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

impl Serialize for BytePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for BytePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BytesVisitor).map(BytePath)
    }
}

/// The same JSON forms for a path outside the share (`#[serde(with = "...::os_path")]` on a
/// `PathBuf`), such as a clone's new store.
pub mod os_path {
    use super::*;

    pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(path.as_os_str().as_bytes(), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
        let bytes = deserializer.deserialize_any(BytesVisitor)?;
        Ok(PathBuf::from(OsString::from_vec(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_a_string_when_utf8_and_bytes_otherwise() {
        let utf8 = BytePath::from("docs/ü a\\b.txt");
        let json = serde_json::to_string(&utf8).expect("serialise");
        assert_eq!(json, r#""docs/ü a\\b.txt""#);
        assert_eq!(
            serde_json::from_str::<BytePath>(&json).expect("parse"),
            utf8
        );
        let latin1 = BytePath(b"caf\xe9".to_vec());
        let json = serde_json::to_string(&latin1).expect("serialise");
        assert_eq!(json, "[99,97,102,233]");
        assert_eq!(
            serde_json::from_str::<BytePath>(&json).expect("parse"),
            latin1
        );
        // An array is accepted for any path; anything else is refused.
        assert_eq!(
            serde_json::from_str::<BytePath>("[97]").expect("parse"),
            BytePath::from("a")
        );
        for bad in ["[256]", "[-1]", "[\"a\"]", "7", "{}", "null"] {
            assert!(serde_json::from_str::<BytePath>(bad).is_err(), "{bad}");
        }
        assert_eq!(latin1.to_string(), "caf\\xe9");
    }
}

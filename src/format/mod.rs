//! Every byte layout snapfs persists, in one place: pure encoding and decoding, no I/O.
//!
//! Decoders never panic on untrusted bytes: every read is bounds-checked and every failure is a
//! [`DecodeError`]. The layouts are drawn in `docs/ARCHITECTURE.md`.

pub mod backup_record;
pub mod catalog;
mod cursor;
pub mod inode;
pub mod location;
pub mod object;
pub mod pack;
pub mod space_sample;
pub mod store_config;
pub mod usage;
pub mod vault_config;
pub mod vault_gc;
pub mod vault_hold;
pub mod vault_index;
pub mod vault_lock;
pub mod vault_pack;
pub mod vault_policy;

/// Why bytes read from disk could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("bad magic number")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("invalid field {field}: {value}")]
    InvalidField { field: &'static str, value: u64 },
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// A field whose value is out of its bounds.
pub(crate) fn invalid(field: &'static str, value: u64) -> DecodeError {
    DecodeError::InvalidField { field, value }
}

//! Where a vault is: `s3://bucket/prefix` or a local path, parsed from what the user typed.

use std::path::PathBuf;

/// A vault's location, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A directory on a local file system (another disk, a NAS mount).
    Local(PathBuf),
    /// A bucket of an S3-compatible object store, and a key prefix inside it (`""` for the
    /// bucket's root; otherwise without leading or trailing `/`).
    S3 { bucket: String, prefix: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("{0}: an s3:// location needs a bucket name (s3://bucket/prefix)")]
    NoBucket(String),
    #[error("{0}: unsupported scheme; use s3://bucket/prefix or a local path")]
    UnknownScheme(String),
    #[error("{0}: invalid prefix (use letters, digits, '.', '_', '-' and '/')")]
    BadPrefix(String),
}

impl BlobLocation {
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LocationError::NoBucket(text.to_owned()));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() && super::BlobKey::new(prefix).is_none() {
                return Err(LocationError::BadPrefix(text.to_owned()));
            }
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(LocationError::UnknownScheme(scheme.to_owned()));
        }
        Ok(BlobLocation::Local(PathBuf::from(text)))
    }

    /// Whether the bytes leave this machine (the default for encryption follows it).
    pub fn is_remote(&self) -> bool {
        matches!(self, BlobLocation::S3 { .. })
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobLocation::Local(path) => write!(f, "{}", path.display()),
            BlobLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            BlobLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls_and_paths() {
        assert_eq!(
            BlobLocation::parse("s3://bucket/a/b/").expect("s3"),
            BlobLocation::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            BlobLocation::parse("s3://bucket").expect("s3"),
            BlobLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            BlobLocation::parse("/mnt/backup/vault").expect("path"),
            BlobLocation::Local("/mnt/backup/vault".into())
        );
        assert_eq!(
            BlobLocation::parse("relative/v").expect("path"),
            BlobLocation::Local("relative/v".into())
        );
        assert!(BlobLocation::parse("s3:///x").is_err());
        assert!(BlobLocation::parse("gs://bucket").is_err());
        assert!(BlobLocation::parse("s3://b/../x").is_err());
        assert_eq!(
            BlobLocation::parse("s3://b/p").expect("s3").to_string(),
            "s3://b/p"
        );
    }
}

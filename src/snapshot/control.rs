//! The control file `.snapshots/.control`: a line protocol for scripts.
//!
//! Writing: one command per line, executed in order; the write fails with an errno at the
//! first command that fails (`EINVAL` for a malformed command or name, `EEXIST`, `ENOENT`, or
//! `EIO`), and the reason can be read back.
//!
//! ```text
//! create NAME     take a snapshot named NAME
//! delete NAME     delete the snapshot NAME
//! gc              collect garbage now; the outcome is a JSON report
//! usage           compute space use (per snapshot: bytes only it holds); outcome is JSON
//! verify [NAME]   check every chunk in use (or NAME's only); outcome is a JSON report
//! verify-quick [NAME]   the same, checking that chunks are indexed without reading them
//! ```
//! Reading returns the outcome of the last command, then one line per snapshot:
//! `NAME<TAB>created (RFC 3339, UTC)<TAB>manual|automatic<TAB>root object id`.

use super::SnapshotError;
use crate::format::catalog::{Origin, SnapshotRecord};

/// A parsed control command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Create(String),
    Delete(String),
    Gc,
    Usage,
    Verify {
        snapshot: Option<String>,
        quick: bool,
    },
}

/// Why a control write was refused; `errno` is what the writer sees.
#[derive(Debug)]
pub struct ControlError {
    pub errno: i32,
    pub message: String,
}

/// The errno a failed snapshot operation gives the writer of the control file (and `mkdir` /
/// `rmdir` under `.snapshots`).
pub fn errno_of(err: &SnapshotError) -> i32 {
    match err {
        SnapshotError::InvalidName { .. } => libc::EINVAL,
        SnapshotError::Exists(_) => libc::EEXIST,
        SnapshotError::NotFound(_) => libc::ENOENT,
        SnapshotError::Freeze(err) if err.is_no_space() => libc::ENOSPC,
        SnapshotError::Freeze(_) | SnapshotError::Catalog(_) => libc::EIO,
    }
}

impl From<SnapshotError> for ControlError {
    fn from(err: SnapshotError) -> Self {
        ControlError {
            errno: errno_of(&err),
            message: err.to_string(),
        }
    }
}

/// Parses the text of one write: every non-empty line must be a command.
pub fn parse(text: &[u8]) -> Result<Vec<Command>, ControlError> {
    let invalid = |message: String| ControlError {
        errno: libc::EINVAL,
        message,
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid("commands must be UTF-8".into()))?;
    let mut commands = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (verb, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let name = name.trim();
        let command: fn(String) -> Command = match (verb, name.is_empty()) {
            ("gc", true) => {
                commands.push(Command::Gc);
                continue;
            }
            ("usage", true) => {
                commands.push(Command::Usage);
                continue;
            }
            ("verify" | "verify-quick", _) => {
                commands.push(Command::Verify {
                    snapshot: (!name.is_empty()).then(|| name.to_owned()),
                    quick: verb == "verify-quick",
                });
                continue;
            }
            ("create", _) => Command::Create,
            ("delete", _) => Command::Delete,
            _ => {
                return Err(invalid(format!(
                    "{line:?}: unknown command (use \"create NAME\", \"delete NAME\", \"gc\" or \"usage\")"
                )));
            }
        };
        if name.is_empty() {
            return Err(invalid(format!("{line:?}: missing snapshot name")));
        }
        commands.push(command(name.to_owned()));
    }
    if commands.is_empty() {
        return Err(invalid("no command given".into()));
    }
    Ok(commands)
}

/// RFC 3339 in UTC, to the second.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What reading the control file returns.
pub fn status_text(last_outcome: &str, snapshots: &[(String, SnapshotRecord)]) -> Vec<u8> {
    let mut out = format!("last: {last_outcome}\nsnapshots: {}\n", snapshots.len());
    for (name, record) in snapshots {
        out.push_str(&format!(
            "{name}\t{}\t{}\t{}\n",
            format_time(record.created.secs),
            match record.origin {
                Origin::Manual => "manual",
                Origin::Automatic => "automatic",
            },
            record.root
        ));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse(b"create before-deploy\n\ndelete old one\n").expect("valid"),
            vec![
                Command::Create("before-deploy".into()),
                Command::Delete("old one".into())
            ]
        );
        assert_eq!(
            parse(b"gc\nusage").expect("valid"),
            vec![Command::Gc, Command::Usage]
        );
        for bad in [
            &b"explode x\n"[..],
            b"create\n",
            b"",
            b"\xff\xfe",
            b"   \n",
            b"gc now",
        ] {
            assert_eq!(parse(bad).expect_err("invalid").errno, libc::EINVAL);
        }
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_303_714), "2026-11-21T23:28:34Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
    }
}

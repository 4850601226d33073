//! The control file's stream of requests, independent of FUSE: the bytes written through one
//! open control file become requests line by line, as a shell reading a script from a pipe
//! takes them, whatever the size and boundaries of the writes (the kernel cuts a large write
//! into pieces of its own choosing, anywhere in a line).
//!
//! Invariants:
//! - a request runs only once its whole line has arrived, or, for an unterminated last line,
//!   when the writer closes the file ([`ControlStream::finish`]);
//! - lines run one at a time, in the order written; the first that fails (a malformed request
//!   or a refused one) stops the write that carried it: the lines after it in that write do not
//!   run;
//! - a line runs whole or not at all: a line longer than [`MAX_LINE_LEN`] is refused as soon as
//!   it passes the limit, and when a failure drops the end of a write that stops inside a line,
//!   the rest of that line is dropped too, up to its newline. No piece of a line ever runs as a
//!   request of its own;
//! - at most [`MAX_LINE_LEN`] bytes wait per open file.
//!
//! Lines are numbered from 1 since the file was opened, blank lines included, so that for
//! `cat requests.txt > .control` the number is the file's line number. A failure names its line
//! (`line 3: ...`) whenever the open file was given more than one line.

use super::ServiceError;
use super::request::{Request, parse_line};

/// The longest request line: far above any real request (the longest is a restore with two
/// paths of at most 4 KiB, spelled as JSON bytes), and small enough that a line waiting for
/// its end costs little memory.
pub const MAX_LINE_LEN: usize = 1 << 20;

/// Carries out one request; the stream only needs to know whether it failed.
pub type Runner<'a> = &'a mut dyn FnMut(Request) -> Result<(), ServiceError>;

/// What one open control file was written: the unfinished line, and how many lines came before.
#[derive(Debug, Default)]
pub struct ControlStream {
    /// The bytes of the line not yet ended by a newline (never more than [`MAX_LINE_LEN`]).
    pending: Vec<u8>,
    /// The unfinished line was refused or cut by a failure: drop it up to its newline.
    skipping: bool,
    /// Lines ended so far, blank, skipped and failed ones included.
    lines: u64,
}

impl ControlStream {
    /// Takes the bytes of one write and runs, in order, every request whose line they end.
    /// On the first failure, returns it (naming its line) and drops the rest of `data`.
    pub fn write(&mut self, data: &[u8], run: Runner<'_>) -> Result<(), ServiceError> {
        let mut pieces = data.split_inclusive(|&byte| byte == b'\n').peekable();
        while let Some(piece) = pieces.next() {
            let more = pieces.peek().is_some();
            let (body, ended) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            if !self.skipping {
                if self.pending.len() + body.len() > MAX_LINE_LEN {
                    let number = self.lines + 1;
                    self.lines += u64::from(ended);
                    let err = ServiceError::invalid(format!(
                        "a request line is longer than the limit of {MAX_LINE_LEN} bytes \
                         (1 MiB); none of it runs"
                    ));
                    return Err(self.fail(err, number, more, data));
                }
                self.pending.extend_from_slice(body);
            }
            if !ended {
                break;
            }
            self.lines += 1;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let line = std::mem::take(&mut self.pending);
            if let Err(err) = run_line(&line, run) {
                return Err(self.fail(err, self.lines, more, data));
            }
        }
        Ok(())
    }

    /// The writer closed the file: runs its unterminated last line, if it left one, as a shell
    /// runs the last line of a script without a final newline.
    pub fn finish(&mut self, run: Runner<'_>) -> Result<(), ServiceError> {
        self.skipping = false;
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        self.lines += 1;
        run_line(&line, run).map_err(|err| self.fail(err, self.lines, false, b"\n"))
    }

    /// Whether an unfinished line waits to run.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the write `data` with `err` at line `number` (`more`: lines follow it in `data`):
    /// drops what waits, and the rest of the line `data` stops in, if it stops inside one.
    fn fail(&mut self, err: ServiceError, number: u64, more: bool, data: &[u8]) -> ServiceError {
        self.pending.clear();
        self.skipping = !data.ends_with(b"\n");
        if number <= 1 && !more {
            return err;
        }
        ServiceError {
            errno: err.errno,
            message: format!("line {number}: {}", err.message),
        }
    }
}

/// Parses and runs one line; a blank line is no request and runs nothing.
fn run_line(line: &[u8], run: Runner<'_>) -> Result<(), ServiceError> {
    match parse_line(line).map_err(ServiceError::invalid)? {
        Some(request) => run(request),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::request::Named;

    /// Feeds `writes` to a new stream, then closes it; returns the names created and the
    /// outcome of each write and of the close.
    fn feed(writes: &[&[u8]]) -> (Vec<String>, Vec<Result<(), ServiceError>>) {
        let mut created = Vec::new();
        let mut run = |request: Request| match request {
            Request::Create(Named { name }) if name.starts_with("bad") => Err(ServiceError {
                errno: libc::EEXIST,
                message: format!("{name} exists"),
            }),
            Request::Create(Named { name }) => {
                created.push(name);
                Ok(())
            }
            other => Err(ServiceError::invalid(format!("unexpected {other:?}"))),
        };
        let mut stream = ControlStream::default();
        let mut outcomes: Vec<_> = writes.iter().map(|w| stream.write(w, &mut run)).collect();
        outcomes.push(stream.finish(&mut run));
        (created, outcomes)
    }

    fn all_ok(outcomes: &[Result<(), ServiceError>]) -> bool {
        outcomes.iter().all(Result::is_ok)
    }

    #[test]
    fn a_line_cut_anywhere_runs_once_whole() {
        let (created, outcomes) = feed(&[b"cre", b"ate x", b"\n", b"create y\ncr", b"eate z\n"]);
        assert_eq!(created, ["x", "y", "z"]);
        assert!(all_ok(&outcomes), "{outcomes:?}");
        let script: Vec<u8> = (0..50)
            .flat_map(|i| format!("create n{i}\n").into_bytes())
            .collect();
        for size in [1, 2, 7, 64, 4096] {
            let writes: Vec<&[u8]> = script.chunks(size).collect();
            let (created, outcomes) = feed(&writes);
            let expected: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
            assert_eq!(created, expected, "in writes of {size} bytes");
            assert!(all_ok(&outcomes), "{outcomes:?}");
        }
    }

    #[test]
    fn an_unterminated_last_line_runs_at_close() {
        let (created, outcomes) = feed(&[b"create a\ncreate b"]);
        assert_eq!(created, ["a", "b"]);
        assert!(all_ok(&outcomes), "{outcomes:?}");
        let (created, outcomes) = feed(&[b"create a\n", b"create bad"]);
        assert_eq!(created, ["a"]);
        let err = outcomes[2]
            .as_ref()
            .expect_err("the last line failed at close");
        assert_eq!(err.message, "line 2: bad exists");
        assert_eq!(err.errno, libc::EEXIST);
    }

    #[test]
    fn the_first_failure_stops_its_write_and_names_its_line() {
        let (created, outcomes) = feed(&[
            b"create a\n\nexplode\ncreate b\ncreate c",
            b"ut short\n",
            b"create d\n",
        ]);
        assert_eq!(created, ["a", "d"], "b and the cut line c... were dropped");
        let err = outcomes[0].as_ref().expect_err("line 3");
        assert!(err.message.starts_with("line 3: "), "{}", err.message);
        assert_eq!(err.errno, libc::EINVAL);
        assert!(all_ok(&outcomes[1..]), "{outcomes:?}");
        // One line alone is not numbered; a first line followed by others is.
        let (_, outcomes) = feed(&[b"create bad1\n"]);
        let err = outcomes[0].as_ref().expect_err("bad");
        assert_eq!(err.message, "bad1 exists");
        let (created, outcomes) = feed(&[b"create bad1\ncreate e\n"]);
        assert!(created.is_empty());
        let err = outcomes[0].as_ref().expect_err("bad");
        assert_eq!(err.message, "line 1: bad1 exists");
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_nothing_of_it_runs() {
        let mut just_under = b"create big".to_vec();
        just_under.resize(MAX_LINE_LEN, b' ');
        just_under.push(b'\n');
        let writes: Vec<&[u8]> = just_under.chunks(100_000).collect();
        let (created, outcomes) = feed(&writes);
        assert_eq!(created, ["big"]);
        assert!(all_ok(&outcomes), "{outcomes:?}");

        // Spaces, then a request at the end: the end of an overlong line never runs.
        let mut over = vec![b' '; MAX_LINE_LEN + 1];
        over.extend_from_slice(b"create sneaky");
        let mut writes: Vec<&[u8]> = over.chunks(100_000).collect();
        writes.push(b"\ncreate after\n");
        let (created, outcomes) = feed(&writes);
        let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!(refused.len(), 1, "{outcomes:?}");
        assert!(
            refused[0].message.contains("longer than"),
            "{}",
            refused[0].message
        );
        assert_eq!(refused[0].errno, libc::EINVAL);
        assert_eq!(created, ["after"]);
    }
}

//! The error type of every fallible operation in this crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong. These are the *expected* failures (disk errors, damaged files, bad
/// arguments); broken internal invariants are assertions instead.
#[derive(Debug)]
pub enum LogError {
    /// The operating system failed an operation.
    Io(io::Error),
    /// A file holds bytes that cannot be a valid log, where recovery must not guess: a bad
    /// frame followed by a valid one, a bad frame in a sealed segment, a hole in the index
    /// sequence, a term going backwards, or a checksum mismatch found by a reader. A single
    /// node refuses to start on it; `offset` is where an explicit repair would cut.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad frame (or of the offending frame).
        offset: u64,
        /// Human-readable explanation.
        reason: String,
    },
    /// Data the caller said must be there is not (see [`crate::Expect`]): the log ends below
    /// an index that had been synced, its directory or every segment is gone, or its end is
    /// damaged although it was closed cleanly. Nothing was changed on disk; `path` is the
    /// directory or the segment where the loss shows.
    Missing {
        /// The log directory or segment file.
        path: PathBuf,
        /// Human-readable explanation.
        reason: String,
    },
    /// An fsync failed earlier. The kernel may have dropped the dirty pages it could not
    /// write, so nothing written since the last good fsync can be trusted and a retry could
    /// falsely succeed; every later call fails with this error. Reopen the log (normally by
    /// restarting the process) to recover from what is really on disk.
    Poisoned,
    /// The caller asked for something impossible (an index outside the log, a term going
    /// backwards, a frame too large, options out of range).
    InvalidArgument(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(error) => write!(f, "log I/O error: {error}"),
            LogError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "log corrupt in {} at byte offset {offset}: {reason}",
                path.display()
            ),
            LogError::Missing { path, reason } => {
                write!(f, "log data missing in {}: {reason}", path.display())
            }
            LogError::Poisoned => write!(
                f,
                "log poisoned: an earlier fsync failed, reopen the log to recover"
            ),
            LogError::InvalidArgument(message) => write!(f, "invalid log argument: {message}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for LogError {
    fn from(error: io::Error) -> LogError {
        LogError::Io(error)
    }
}

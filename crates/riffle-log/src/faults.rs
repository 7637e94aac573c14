//! Fault injection: a switchboard the log consults at its write and fsync calls, so tests can
//! make the disk fail the way real disks do, at a moment they choose.
//!
//! Built for the crate's own unit tests and, with the `fault-injection` feature, for
//! integration tests (`tests/log_model.rs` drives it from its property test). Release builds
//! of the server leave the feature off: then none of this exists and the I/O calls carry no
//! extra branch.
//!
//! Each switch is one-shot: it fires on the next matching call and resets itself.
//!
//! - [`WriteFault`]: the next batch write fails with `ENOSPC` or `EIO`, after writing nothing
//!   or only the first half of its bytes (a torn write, as a full disk or a failing device
//!   leaves it). The log must cut the file back so no stale frame remains, and go on.
//! - [`SyncFault`]: the next fsync fails. The log must poison itself (every later call fails
//!   until it is reopened): after a failed fsync the kernel may have dropped the dirty pages,
//!   so a retry could report success for data that never reached the disk.
//!
//! Bit flips need no switch: tests flip bits in the files themselves, and readers must detect
//! them by checksum and never serve them.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

/// How the next batch write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// `ENOSPC` before a byte is written.
    NoSpace,
    /// Half the batch reaches the file, then `ENOSPC`.
    TornNoSpace,
    /// Half the batch reaches the file, then `EIO`.
    TornIo,
}

/// How the next fsync fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFault {
    /// `EIO`, as a device error reports it.
    Io,
    /// `ENOSPC`, as delayed allocation on a full filesystem reports it.
    NoSpace,
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// The switches. One per log, shared with its sync handles.
#[derive(Debug, Default)]
pub struct Faults {
    write: AtomicU8,
    sync: AtomicU8,
}

impl Faults {
    /// Makes the next batch write fail as `fault` says.
    pub fn fail_next_write(&self, fault: WriteFault) {
        let code = match fault {
            WriteFault::NoSpace => 1,
            WriteFault::TornNoSpace => 2,
            WriteFault::TornIo => 3,
        };
        self.write.store(code, Ordering::SeqCst);
    }

    /// Makes the next fsync fail as `fault` says.
    pub fn fail_next_sync(&self, fault: SyncFault) {
        let code = match fault {
            SyncFault::Io => 1,
            SyncFault::NoSpace => 2,
        };
        self.sync.store(code, Ordering::SeqCst);
    }

    /// The pending write fault, if any, consumed: how many of `len` bytes to write, and the
    /// error to return after them.
    pub(crate) fn take_write(&self, len: usize) -> Option<(usize, io::Error)> {
        match self.write.swap(0, Ordering::SeqCst) {
            1 => Some((0, io::Error::from_raw_os_error(ENOSPC))),
            2 => Some((len / 2, io::Error::from_raw_os_error(ENOSPC))),
            3 => Some((len / 2, io::Error::from_raw_os_error(EIO))),
            _ => None,
        }
    }

    /// The pending fsync fault, if any, consumed, as the error the fsync returns.
    pub(crate) fn take_sync(&self) -> Option<io::Error> {
        match self.sync.swap(0, Ordering::SeqCst) {
            1 => Some(io::Error::from_raw_os_error(EIO)),
            2 => Some(io::Error::from_raw_os_error(ENOSPC)),
            _ => None,
        }
    }
}

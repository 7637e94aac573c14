//! Raising the open-file limit at start.
//!
//! Every connection is a socket and every open shard keeps its active segment file open (see
//! `riffle_log::FileCache` for the rest), while most systems start processes with a soft
//! `RLIMIT_NOFILE` of 1,024 and a hard limit far above it. Like other servers, riffle raises
//! its soft limit to the hard limit at start, so the default never caps a busy node; the hard
//! limit stays the operator's to set (`ulimit -Hn`, systemd's `LimitNOFILE`).
//!
//! `rustix` makes the two system calls without `unsafe`; it is already in the dependency
//! tree (through `tempfile`), so this adds only its `process` module, not a crate.

/// Raises the soft open-file limit to the hard limit, logging the figures at debug. A failure
/// only logs: the server runs with the limit it was given.
#[cfg(unix)]
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    let limit = getrlimit(Resource::Nofile);
    let show = |value: Option<u64>| value.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    if limit.current == limit.maximum {
        tracing::debug!(limit = %show(limit.current), "open-file limit already at the hard limit");
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(
            from = %show(limit.current),
            to = %show(limit.maximum),
            "raised the open-file soft limit to the hard limit"
        ),
        // macOS refuses an unlimited soft limit (it caps it at OPEN_MAX): keep what we have.
        Err(error) => tracing::debug!(
            limit = %show(limit.current),
            hard = %show(limit.maximum),
            %error,
            "could not raise the open-file soft limit"
        ),
    }
}

/// Elsewhere there is no such limit to raise.
#[cfg(not(unix))]
pub fn raise_open_file_limit() {}

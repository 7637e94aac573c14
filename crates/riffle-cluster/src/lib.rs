//! riffle's openraft glue, storage half: the Raft log of a group **is** a riffle-log segment
//! log.
//!
//! A riffle cluster runs one Raft group for its metadata (the catalogue) and one per shard.
//! Each group keeps its log in one directory of riffle-log segment files, opened as a
//! [`LogStore`], which implements openraft's `RaftLogStorage` (and, as [`LogStoreReader`],
//! its `RaftLogReader`). For a shard, the frames openraft appends are the shard's data: a
//! record batch is written once, as the Raft entry that replicates it, and reads, the sparse
//! index and retention work on the same files as on a single node today. riffle-log knows
//! nothing of openraft; everything Raft-specific lives here.
//!
//! This crate has no network and no state machines yet (see ARCHITECTURE.md's departures);
//! its tests run openraft's storage conformance suite (`openraft::testing::log::Suite`)
//! against [`LogStore`] with a minimal state machine, plus restart and damage scenarios the
//! suite does not cover.
//!
//! # Which openraft
//!
//! openraft `=0.10.0-alpha.37`, pinned exactly, without default features (so no `clap`),
//! with the tokio runtime. 0.9.25 is the stable line, but 0.10 fits riffle better where it
//! matters for years: a state machine owns its snapshot type (`RaftStateMachine::SnapshotData`
//! instead of one `AsyncRead + AsyncSeek` type per type configuration), so the shard groups
//! can ship a snapshot as hard links to retained segment files while the metadata group
//! ships a catalogue document, under one [`RiffleRaft`] configuration and with riffle owning
//! the transfer; storage speaks `io::Error`, which riffle-log errors map onto directly; log
//! reads for replication are streams bounded by a leader; and 0.9 always builds `clap`. Both lines have the `append(entries, callback)`
//! shape group commit needs. The price of an alpha is API churn between releases, which the
//! exact pin and this crate's small surface contain; 0.9 remains the fallback.
//!
//! # Entries and frames
//!
//! | openraft entry                                | frame kind   | frame payload            |
//! |-----------------------------------------------|--------------|--------------------------|
//! | `Normal`, [`FramePayload`] of kind `Records`  | `Data`       | the batch, opaque        |
//! | `Normal`, [`FramePayload`] of kind `Seal`     | `Seal`       | as given (usually empty) |
//! | `Blank`                                       | `Blank`      | empty                    |
//! | `Membership`                                  | `Membership` | riffle's JSON document   |
//!
//! A frame's `term` and `leader` are the entry's log id (openraft's default leader ids are
//! a term and a node id), and a normal entry's flags, record count and timestamps fill the
//! frame header fields of the same names. The frame **index is the Raft index plus one**
//! ([`frame_index`], [`raft_index`]): openraft numbers a group's first entry 0, riffle-log
//! numbers frames from 1 and keeps 0 for "before the first frame"; keeping riffle-log's
//! numbering also keeps today's sequence numbers, which are built from frame indexes.
//! Entries read back are identical to those appended (see `codec.rs` for the rules and the
//! membership document, which is riffle's own so the bytes on disk do not depend on the
//! openraft version).
//!
//! # The vote file
//!
//! Beside the segments, a small [`vote` file](vote_file) holds the group's vote, the last
//! purged log id and the last committed log id, checksummed, replaced atomically (write
//! temp, fsync, rename, fsync the directory) and readable by its owner only. The vote must
//! survive anything (a node that forgets its vote can vote twice in a term), so a damaged
//! vote file, or a log holding a later term than the vote, stops [`LogStore::open`] instead
//! of being read as "no vote". The purged id lives there because riffle-log purges whole
//! segments and cannot name the entry before its first one after a restart; it is written
//! before any segment is deleted, and `open` finishes a purge a crash interrupted. The
//! committed id is a hint and reaches the file lazily ([`LogStore::persist_committed`]).
//!
//! # Appends and group commit
//!
//! `append` writes the frames (`write(2)`, readable at once, as openraft requires) and hands
//! openraft's callback, with a riffle-log `SyncHandle`, to a [`Flusher`] as a
//! [`PendingFlush`]. [`SyncNow`] fdatasyncs on the spot; a node-wide flusher can instead run
//! one fdatasync for many pending flushes of many groups and then complete them all.
//!
//! ```text
//! <group dir>/
//!   vote                         vote, committed and purged log ids (this crate)
//!   00000000000000000001.log     riffle-log segments: frame i = Raft entry i - 1
//!   00000000000000000001.idx
//! ```

mod codec;
pub mod flush;
mod log_store;
pub mod types;
pub mod vote_file;

pub use crate::flush::{Flusher, PendingFlush, SyncNow};
pub use crate::log_store::{
    LogStore, LogStoreReader, LIMITED_READ_BYTES_MAX, LIMITED_READ_ENTRIES_MAX,
};
pub use crate::types::{
    frame_index, raft_index, Applied, ClusterNode, Entry, FramePayload, LogId, Membership,
    PayloadKind, RiffleRaft, StoredMembership, Vote,
};

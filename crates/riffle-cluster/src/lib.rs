//! riffle's openraft glue: the Raft log of a group **is** a riffle-log segment log, and the
//! metadata group replicates riffle-core's catalogue.
//!
//! A riffle cluster runs one Raft group for its metadata (the catalogue) and one per shard.
//! Each group keeps its log in one directory of riffle-log segment files, opened as a
//! [`LogStore`], which implements openraft's `RaftLogStorage` (and, as [`LogStoreReader`],
//! its `RaftLogReader`). For a shard, the frames openraft appends are the shard's data: a
//! record batch is written once, as the Raft entry that replicates it, and reads, the sparse
//! index and retention work on the same files as on a single node today. riffle-log knows
//! nothing of openraft; everything Raft-specific lives here. riffle-core knows nothing of
//! openraft either: this crate depends on it, for the catalogue it replicates, never the
//! other way round.
//!
//! The [metadata group](meta_group) applies riffle-core's catalogue commands
//! ([`riffle_core::catalogue::Command`]) in log order with [`MetaStateMachine`], answers each
//! proposer with the catalogue's verdict, and snapshots the catalogue with every stream's
//! version into `DATA/meta/snapshot` ([`meta_snapshot`]). The [peer network](network)
//! carries every group's RPCs, and the node's own calls, over one authenticated TCP
//! connection per peer. This crate has no shard state machines yet (see ARCHITECTURE.md's
//! departures); its tests run openraft's storage conformance suite
//! (`openraft::testing::log::Suite`) against [`LogStore`], restart and damage scenarios the
//! suite does not cover, and the metadata group on one and three nodes over an in-process
//! network (`tests/router/`) and over the peer network on loopback TCP (`tests/network.rs`).
//!
//! # One type configuration for every group
//!
//! The metadata group and the shard groups share [`RiffleRaft`]. Its application data stays
//! a [`FramePayload`], "what one frame carries": a shard's entry holds a record batch, a
//! metadata entry a catalogue command in riffle's JSON envelope ([`command_payload`]), both
//! as `Data` frames. Its answer is a [`Response`]: where an entry landed
//! ([`Response::Appended`], for shards and membership changes) or the catalogue's verdict
//! ([`Response::Catalogue`]). The alternatives were weighed and set aside:
//!
//! * a second type configuration for the metadata group would make every generic piece
//!   generic twice over: [`LogStore`], the codec and the flusher are written against
//!   `RiffleRaft`, and the peer network, which multiplexes all groups over one connection
//!   per peer, would need two sets of RPC types. Type safety between groups would be the
//!   gain, but a shard group's state machine still has to refuse foreign entries whatever
//!   the types say;
//! * an enum of "shard frame" and "catalogue command" as the application data would decode
//!   commands inside the log codec, so an entry a node cannot decode (a newer riffle's
//!   command) would make its log unreadable, replication of it to others included. Keeping
//!   commands opaque to the log and decoding them in the state machine leaves that decision
//!   to [`MetaStateMachine`], which stops the group on that node, naming the entry, rather
//!   than skip it and let catalogues drift apart.
//!
//! Snapshots need no such choice: in openraft 0.10 each state machine owns its snapshot type,
//! so the metadata group ships its snapshot file's bytes while shard groups ship theirs (a
//! log id, a membership and the seal, built by retention at the purge point: see
//! [`shard_group`]).
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
//! The runtime is tokio, through [`RiffleRuntime`]: outside a seeded scope (always, in the
//! server) it is openraft's tokio runtime; inside one, openraft's election timeouts come
//! from the seed and its watch channels wake waiters in a fixed order, so the simulator
//! (riffle-sim) replays a seed exactly with the production type configuration
//! ([`runtime`] says why this and not a second configuration).
//!
//! # Entries and frames
//!
//! | openraft entry                                | frame kind   | frame payload            |
//! |-----------------------------------------------|--------------|--------------------------|
//! | `Normal`, [`FramePayload`] of kind `Records`  | `Data`       | the batch (a shard) or a command (metadata), opaque |
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
//! [`PendingFlush`]. A node's [`GroupCommit`] gives each log a [`Lane`] on shared fsync
//! threads: one fdatasync covers every append a log made while its previous one ran, and
//! logs sync in parallel ([`SyncNow`], fdatasync on the spot, is for tests).
//!
//! ```text
//! <group dir>/                   DATA/meta/ for the metadata group
//!   vote                         vote, committed and purged log ids (this crate)
//!   snapshot                     the last snapshot (meta_snapshot; shard_group for a shard)
//!   00000000000000000001.log     riffle-log segments: frame i = Raft entry i - 1
//!   00000000000000000001.idx
//! ```

pub mod cluster;
mod codec;
mod durable_file;
pub mod flush;
mod log_store;
pub mod meta_group;
pub mod meta_snapshot;
pub mod network;
pub mod placement;
pub mod runtime;
pub mod shard_group;
pub mod types;
pub mod vote_file;

pub use crate::flush::{Flusher, GroupCommit, Lane, PendingFlush, SyncNow};
pub use crate::log_store::{
    LogStore, LogStoreReader, LIMITED_READ_BYTES_MAX, LIMITED_READ_ENTRIES_MAX,
};
pub use crate::meta_group::{
    command_payload, decode_command, open_meta_group, propose, MetaRaft, MetaSnapshot,
    MetaStateMachine, MetaView, ProposeError, META_DIR_NAME,
};
pub use crate::runtime::RiffleRuntime;
pub use crate::types::{
    frame_index, raft_index, Applied, ClusterNode, Entry, FramePayload, LogId, Membership,
    PayloadKind, Response, RiffleRaft, StoredMembership, Vote,
};

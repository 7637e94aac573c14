//! Riffle's domain: streams, shards, routing, iterators, retention and group commit.
//!
//! This crate knows nothing of HTTP. [`service::call`] takes an operation name and a request
//! body (decoded by `riffle-proto`) and returns the encoded answer or a Kinesis error; the server
//! crate only moves bytes. Storage goes through [`shard_log::ShardLog`], a thin owner of a
//! `riffle_log::Log` that adds group commit and a published tail; that seam is where a Raft
//! engine will later own the log (the log's frames already carry an index and a term).
//!
//! Modules, in the order a request meets them:
//! - [`service`]: one function per operation: validation beyond the wire format, AWS errors.
//! - [`node`]: the catalogue of streams and shards, control-plane changes, retention.
//! - [`data`]: routing puts, sequence numbers, iterators, reads.
//! - [`throttle`]: per-shard throughput and control-plane call-rate limits (token buckets).
//! - [`shard_log`]: appends, the flusher (group commit), the tail watch channel.
//! - [`consumers`]: enhanced fan-out consumers (register, describe, list, deregister).
//! - [`subscribe`]: SubscribeToShard's event streams, fed from the shards' tail watch.
//! - [`queues`]: queues on streams (CreateQueue … RestoreDeadLetterQueueRecords), their
//!   delivery state and its journal.
//! - [`policy`]: resource policies (cross-account access to streams and consumers).
//! - [`record`]: how records are laid out inside a log frame.
//! - [`encryption`]: Start/StopStreamEncryption, and which key a stream's puts seal with.
//! - [`crypto`]: the KMS key store (`--kms-keys`), sealing and opening frame payloads.
//! - [`reshard`]: pure plans for splits, merges and uniform scaling, with their lineage.
//! - [`scaler`]: ON_DEMAND streams split hot shards and merge cold ones by themselves.
//! - [`meta`]: the persisted catalogue (`meta.json`).
//! - [`watermarks`]: each shard's synced and first-kept index, so a start can see lost data.
//! - [`startup`]: what a start may do to a data directory, and what it must refuse.
//! - [`metrics`]: CloudWatch's stream metrics as counters, their Prometheus text, and enhanced
//!   (shard-level) monitoring.
//! - [`advantage`]: the account's On-demand Advantage commitment, warm throughput.
//! - [`responses`]: the node-wide budget of answer bytes held in memory; sizes GetRecords.

pub mod advantage;
pub mod catalogue;
pub mod channels;
pub mod consumers;
pub mod control;
pub mod crypto;
pub mod data;
pub mod delivery;
pub mod encryption;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod policy;
pub mod queues;
pub mod record;
pub mod reshard;
pub mod responses;
pub mod scaler;
pub mod service;
pub mod shard_log;
pub mod startup;
pub mod subscribe;
pub mod throttle;
pub mod watermarks;

pub use node::{Node, NodeConfig};
pub use riffle_proto::KinesisError as Error;
pub use shard_log::Durability;
pub use throttle::Limits;

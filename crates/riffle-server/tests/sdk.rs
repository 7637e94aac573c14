//! Black-box tests of the `riffle` binary through the real `aws-sdk-kinesis` client.
//!
//! Each test starts its own server (`serve --in-memory` on a free port), so tests run in
//! parallel and see no one else's streams. Expectations come from Kinesis itself
//! (kinesis-api.md in the design notes), not from riffle's code: a failure here means riffle
//! differs from what AWS clients expect.

#[path = "sdk/common.rs"]
mod common;

#[path = "sdk/account.rs"]
mod account;
#[path = "sdk/arn.rs"]
mod arn;
#[path = "sdk/browser.rs"]
mod browser;
#[path = "sdk/cbor.rs"]
mod cbor;
#[path = "sdk/cli.rs"]
mod cli;
#[path = "sdk/console.rs"]
mod console;
#[path = "sdk/distribution.rs"]
mod distribution;
#[path = "sdk/encryption.rs"]
mod encryption;
#[path = "sdk/errors.rs"]
mod errors;
#[path = "sdk/every_operation.rs"]
mod every_operation;
#[path = "sdk/fanout.rs"]
mod fanout;
#[path = "sdk/iterators.rs"]
mod iterators;
#[path = "sdk/limits.rs"]
mod limits;
#[path = "sdk/listing.rs"]
mod listing;
#[path = "sdk/logging.rs"]
mod logging;
#[path = "sdk/monitoring.rs"]
mod monitoring;
#[path = "sdk/on_demand.rs"]
mod on_demand;
#[path = "sdk/policies.rs"]
mod policies;
#[path = "sdk/queues.rs"]
mod queues;
#[path = "sdk/raw_http.rs"]
mod raw_http;
#[path = "sdk/records.rs"]
mod records;
#[path = "sdk/reshard.rs"]
mod reshard;
#[path = "sdk/retention.rs"]
mod retention;
#[path = "sdk/sigv4.rs"]
mod sigv4;
#[path = "sdk/streams.rs"]
mod streams;
#[path = "sdk/tags.rs"]
mod tags;
#[path = "sdk/tls.rs"]
mod tls;

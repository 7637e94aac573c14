//! Throughput and call-rate limits, enforced the way Kinesis enforces them: token buckets.
//!
//! **What is measured.** Per shard (both capacity modes, kinesis-api.md §4):
//!
//! | bucket | rate | burst (capacity) | refusal |
//! |---|---|---|---|
//! | write bytes (data + partition key) | 1 MiB/s | 1 MiB, may borrow up to a whole record | PTE |
//! | write records | 1,000/s | 1,000 | PTE |
//! | GetRecords calls | 5/s | 5 | PTE |
//! | read bytes (data + partition key returned) | 2 MiB/s | 2 MiB, charged after the read | PTE |
//! | GetShardIterator calls | 5/s | 5 | PTE |
//!
//! and per account (per stream for ListShards) every control-plane operation at its published
//! rate ([`control_rate`]), refused with LimitExceededException.
//!
//! **The bucket.** A [`TokenBucket`] holds up to `capacity` tokens and gains `rate` tokens per
//! second. It is refilled lazily: nothing runs in the background, each use first adds
//! `rate × elapsed` (capped at the capacity) for the time since the last use. Time is a `u64`
//! of nanoseconds on a monotonic clock passed in by the caller, so tests drive it by hand; the
//! limiters below read it from one `Instant` taken when they are made. Arithmetic is integer
//! (tokens are kept in units of 10⁻⁹ tokens), so the same calls give the same answers.
//!
//! **The burst: one second of rate.** AWS quotes every limit per second and refuses what goes
//! over it; a client that spends a second's quota in one go (a PutRecords of 500 records, a
//! KPL flush, a KCL worker's five first GetRecords) is not refused. A bucket holding exactly one
//! second of rate admits that and no more: over any window of `t` seconds a shard accepts at
//! most `rate × (1 + t)`, the same bound as AWS's per-second accounting, and a client that
//! stays at or under the rate is never refused as long as it bunches no more than a second's
//! quota together. A
//! larger burst would let a producer that overshoots for several seconds go unthrottled
//! (AWS would refuse it); a smaller one would refuse clients that are within the limit.
//!
//! **Debt.** Two things may take more than the bucket holds, so the bucket can go negative and
//! must refill back to zero before it admits again:
//! - *Reads*: a GetRecords call is admitted when the read-bytes bucket is positive and a call
//!   token is free; the bytes it actually returns are charged afterwards. A 10 MiB answer
//!   therefore leaves the shard about 4–5 s in debt, during which GetRecords is refused (AWS:
//!   "a response of 10 MiB makes calls in the next 5 s fail").
//! - *Large records*: AWS lets a shard "burst up to 10 MiB while averaging 1 MiB/s" for records
//!   above 1 MiB. A record is admitted when the write-bytes bucket holds `min(size, capacity)`
//!   and then charged its full size, so a 10 MiB record needs a full bucket and leaves the
//!   shard 9 MiB in debt (about 9 s without writes). Records of up to 1 MiB need their own
//!   size, as in a plain bucket. Either way the long-run rate stays 1 MiB/s.
//!
//! **Writes, record by record.** PutRecords admits the records routed to one shard one at a
//! time in request order; a record must pass both write buckets, and a refused record takes
//! nothing, so a later, smaller record may still pass. Refused records get the per-entry
//! `ProvisionedThroughputExceededException` and are never appended.
//!
//! **Concurrency.** Each shard owns its limiter ([`ShardThrottle`], a field of
//! [`crate::node::Shard`]): writes and reads each lock their own small mutex for a few integer
//! operations, so shards never contend with each other and no lock is shared across shards on
//! the put path. The control-plane limiter is one mutex over a map, taken once per
//! control-plane call.
//!
//! **Off.** With [`Limits::Off`] (`riffle serve --limits off`) shards carry no limiter and the
//! node none either: every check is a test of an `Option` that is `None`. Record-size and
//! request-size checks are validation, not throttling, and apply either way, as do the
//! account's shard and on-demand stream quotas (set with `--shard-limit`).
//!
//! **Bounded memory.** The control-plane map gains an entry per (account, operation[, stream])
//! called. A full bucket is indistinguishable from a fresh one, so once the map passes
//! [`CONTROL_KEYS_PRUNE_AT`] entries the full ones are dropped; what remains was used within
//! about the last second, which the request rate bounds.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use riffle_proto::{limits, Request};

use crate::control::Caller;
use crate::node::{Node, Shard, Stream};
use crate::record::NewRecord;
use crate::Error;

/// Whether the node enforces limits (`riffle serve --limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limits {
    /// AWS's per-shard throughput and control-plane call rates (the default).
    #[default]
    Aws,
    /// No throughput or call-rate limit at all (local testing, benchmarks).
    Off,
}

/// Nanoseconds on a monotonic clock.
pub type Nanos = u64;

/// Bucket balances are kept in units of 10⁻⁹ token, so a refill is `rate × elapsed_ns`.
const UNITS_PER_TOKEN: i128 = 1_000_000_000;

/// Control-plane map size above which full (idle) buckets are dropped.
pub const CONTROL_KEYS_PRUNE_AT: usize = 4096;

/// A token bucket: `rate_per_second` tokens per second, at most `capacity` banked, refilled
/// lazily from the clock values passed in. The balance may go negative (debt) through
/// [`TokenBucket::charge`] and [`TokenBucket::try_borrow`].
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: u64,
    capacity: u64,
    /// In units of 10⁻⁹ token; negative while in debt.
    balance: i128,
    updated_ns: Nanos,
}

impl TokenBucket {
    /// A bucket that starts full at `now_ns`.
    pub fn full(rate_per_second: u64, capacity: u64, now_ns: Nanos) -> TokenBucket {
        TokenBucket {
            rate_per_second,
            capacity,
            balance: i128::from(capacity) * UNITS_PER_TOKEN,
            updated_ns: now_ns,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Adds what accrued since the last call. A clock value older than the last one (callers
    /// racing for the lock with values read before it) adds nothing and keeps the newer time.
    fn refill(&mut self, now_ns: Nanos) {
        if now_ns <= self.updated_ns {
            return;
        }
        let elapsed = i128::from(now_ns - self.updated_ns);
        let full = i128::from(self.capacity) * UNITS_PER_TOKEN;
        self.balance = self
            .balance
            .saturating_add(elapsed.saturating_mul(i128::from(self.rate_per_second)))
            .min(full);
        self.updated_ns = now_ns;
    }

    /// Whole tokens available at `now_ns` (negative while in debt).
    pub fn tokens(&mut self, now_ns: Nanos) -> i64 {
        self.refill(now_ns);
        let whole = self.balance.div_euclid(UNITS_PER_TOKEN);
        i64::try_from(whole).unwrap_or(if whole < 0 { i64::MIN } else { i64::MAX })
    }

    /// Whether at least `amount` tokens are there.
    fn has(&mut self, amount: u64, now_ns: Nanos) -> bool {
        self.refill(now_ns);
        self.balance >= i128::from(amount) * UNITS_PER_TOKEN
    }

    /// Whether the balance is above zero.
    pub fn is_positive(&mut self, now_ns: Nanos) -> bool {
        self.refill(now_ns);
        self.balance > 0
    }

    /// Whether the bucket is full (then it is the same as a fresh one).
    pub fn is_full(&mut self, now_ns: Nanos) -> bool {
        self.refill(now_ns);
        self.balance >= i128::from(self.capacity) * UNITS_PER_TOKEN
    }

    /// Takes `amount` tokens if that many are there.
    pub fn try_take(&mut self, amount: u64, now_ns: Nanos) -> bool {
        if !self.has(amount, now_ns) {
            return false;
        }
        self.take(amount);
        true
    }

    /// Takes `amount` tokens if at least `need` are there, going into debt for the rest.
    pub fn try_borrow(&mut self, amount: u64, need: u64, now_ns: Nanos) -> bool {
        if !self.has(need, now_ns) {
            return false;
        }
        self.take(amount);
        true
    }

    /// Takes `amount` tokens unconditionally (reads charge what they returned).
    pub fn charge(&mut self, amount: u64, now_ns: Nanos) {
        self.refill(now_ns);
        self.take(amount);
    }

    fn take(&mut self, amount: u64) {
        self.balance = self
            .balance
            .saturating_sub(i128::from(amount) * UNITS_PER_TOKEN);
    }
}

/// The two write buckets of a shard.
#[derive(Debug, Clone)]
pub struct WriteBuckets {
    pub bytes: TokenBucket,
    pub records: TokenBucket,
}

impl WriteBuckets {
    pub fn full(now_ns: Nanos) -> WriteBuckets {
        WriteBuckets {
            bytes: TokenBucket::full(
                limits::SHARD_WRITE_BYTES_PER_SECOND,
                limits::SHARD_WRITE_BYTES_PER_SECOND,
                now_ns,
            ),
            records: TokenBucket::full(
                limits::SHARD_WRITE_RECORDS_PER_SECOND,
                limits::SHARD_WRITE_RECORDS_PER_SECOND,
                now_ns,
            ),
        }
    }

    /// Admits one record of `size_bytes` (data + partition key): both buckets must allow it,
    /// and a refused record takes nothing from either. A record larger than the bytes bucket
    /// needs a full bucket and leaves it in debt (see the module doc).
    pub fn admit(&mut self, size_bytes: u64, now_ns: Nanos) -> bool {
        let need_bytes = size_bytes.min(self.bytes.capacity());
        if !self.records.has(1, now_ns) || !self.bytes.has(need_bytes, now_ns) {
            return false;
        }
        self.records.take(1);
        self.bytes.take(size_bytes);
        true
    }
}

/// The GetRecords buckets of a shard.
#[derive(Debug, Clone)]
pub struct ReadBuckets {
    pub calls: TokenBucket,
    pub bytes: TokenBucket,
}

impl ReadBuckets {
    pub fn full(now_ns: Nanos) -> ReadBuckets {
        ReadBuckets {
            calls: TokenBucket::full(
                u64::from(limits::GET_RECORDS_CALLS_PER_SECOND),
                u64::from(limits::GET_RECORDS_CALLS_PER_SECOND),
                now_ns,
            ),
            bytes: TokenBucket::full(
                limits::SHARD_READ_BYTES_PER_SECOND,
                limits::SHARD_READ_BYTES_PER_SECOND,
                now_ns,
            ),
        }
    }

    /// Admits one GetRecords call: a call token is free and the shard is not in read debt.
    /// The bytes are charged by [`ReadBuckets::charge`] once the call knows them.
    pub fn admit(&mut self, now_ns: Nanos) -> bool {
        if !self.bytes.is_positive(now_ns) || !self.calls.has(1, now_ns) {
            return false;
        }
        self.calls.take(1);
        true
    }

    pub fn charge(&mut self, bytes: u64, now_ns: Nanos) {
        self.bytes.charge(bytes, now_ns);
    }
}

/// One shard's limiter. Writes, reads and GetShardIterator each have their own mutex.
#[derive(Debug)]
pub struct ShardThrottle {
    origin: Instant,
    write: Mutex<WriteBuckets>,
    read: Mutex<ReadBuckets>,
    iterators: Mutex<TokenBucket>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks leaves plain integers behind, still consistent enough.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ShardThrottle {
    /// The limiter a shard gets under `limits`; `None` when limits are off.
    pub fn for_limits(limits: Limits) -> Option<ShardThrottle> {
        match limits {
            Limits::Aws => Some(ShardThrottle::new()),
            Limits::Off => None,
        }
    }

    /// A limiter with every bucket full.
    pub fn new() -> ShardThrottle {
        ShardThrottle {
            origin: Instant::now(),
            write: Mutex::new(WriteBuckets::full(0)),
            read: Mutex::new(ReadBuckets::full(0)),
            iterators: Mutex::new(TokenBucket::full(
                u64::from(limits::GET_SHARD_ITERATOR_CALLS_PER_SECOND),
                u64::from(limits::GET_SHARD_ITERATOR_CALLS_PER_SECOND),
                0,
            )),
        }
    }

    fn now_ns(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for ShardThrottle {
    fn default() -> ShardThrottle {
        ShardThrottle::new()
    }
}

/// Admits the records of one shard's group of a put, in request order, against the shard's
/// write buckets. `places[i]` is the request position of `batch[i]`. Refused records are
/// removed from both (the admitted keep their order) and their places returned, for the
/// caller to answer with [`Error::write_throttled`]. Without a limiter nothing is refused.
pub fn admit_writes<P: Copy>(
    shard: &Shard,
    places: &mut Vec<P>,
    batch: &mut Vec<NewRecord>,
) -> Vec<P> {
    let Some(throttle) = &shard.throttle else {
        return Vec::new();
    };
    debug_assert_eq!(places.len(), batch.len());
    let now_ns = throttle.now_ns();
    let mut refused = Vec::new();
    let mut kept = 0;
    {
        let mut buckets = lock(&throttle.write);
        for index in 0..batch.len() {
            let record = &batch[index];
            let size_bytes = (record.data.len() + record.partition_key.len()) as u64;
            if buckets.admit(size_bytes, now_ns) {
                // Everything in kept..index was refused and is already noted, so moving one
                // of them back here loses nothing and keeps the admitted in request order.
                places.swap(kept, index);
                batch.swap(kept, index);
                kept += 1;
            } else {
                refused.push(places[index]);
            }
        }
    }
    places.truncate(kept);
    batch.truncate(kept);
    refused
}

/// Admits one GetRecords call on `shard`, or refuses it with AWS's read-throttle text.
pub fn admit_read(shard: &Shard, stream: &Stream) -> Result<(), Error> {
    let Some(throttle) = &shard.throttle else {
        return Ok(());
    };
    let now_ns = throttle.now_ns();
    if lock(&throttle.read).admit(now_ns) {
        Ok(())
    } else {
        crate::metrics::read_throttled(stream, shard);
        Err(Error::read_throttled(
            &stream.account,
            &stream.name,
            &shard.id(),
        ))
    }
}

/// Charges the bytes (data + partition keys) an admitted GetRecords call returned.
pub fn charge_read(shard: &Shard, bytes: usize) {
    if let Some(throttle) = &shard.throttle {
        let now_ns = throttle.now_ns();
        lock(&throttle.read).charge(bytes as u64, now_ns);
    }
}

/// Admits one GetShardIterator call on `shard` (5 per second per shard). AWS publishes no
/// text for this refusal; riffle uses the read-throttle one, which names the shard.
pub fn admit_iterator(shard: &Shard, stream: &Stream) -> Result<(), Error> {
    let Some(throttle) = &shard.throttle else {
        return Ok(());
    };
    let now_ns = throttle.now_ns();
    if lock(&throttle.iterators).try_take(1, now_ns) {
        Ok(())
    } else {
        Err(Error::read_throttled(
            &stream.account,
            &stream.name,
            &shard.id(),
        ))
    }
}

/// Whom a control-plane rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Stream,
}

/// The published call rate of a control-plane operation (kinesis-api.md §4; operations AWS
/// publishes none for get 5, as kinesis-mock does), or `None` for the data plane, whose
/// limits are per shard.
pub fn control_rate(operation: &str) -> Option<(u64, Scope)> {
    Some(match operation {
        "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "SubscribeToShard" => {
            return None
        }
        "DescribeStream" => (10, Scope::Account),
        "DescribeStreamSummary" => (20, Scope::Account),
        "ListShards" => (1000, Scope::Stream),
        "DescribeLimits" => (1, Scope::Account),
        "UpdateShardCount" => (10, Scope::Account),
        "DescribeStreamConsumer" => (20, Scope::Stream),
        "DeregisterStreamConsumer" | "ListStreamConsumers" => (5, Scope::Stream),
        // CreateStream, DeleteStream, ListStreams, MergeShards, SplitShard, the tag
        // operations, Describe/UpdateAccountSettings, RegisterStreamConsumer,
        // UpdateStreamWarmThroughput, and the unpublished rest.
        _ => (5, Scope::Account),
    })
}

/// Operations whose refusal names the account rather than a stream.
fn account_level(operation: &str) -> bool {
    matches!(
        operation,
        "CreateStream"
            | "ListStreams"
            | "DescribeLimits"
            | "DescribeAccountSettings"
            | "UpdateAccountSettings"
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ControlKey {
    account: String,
    operation: &'static str,
    /// Set for per-stream rates.
    stream: Option<String>,
}

/// The node's control-plane limiter: one bucket per (account, operation), or per (account,
/// operation, stream) for per-stream rates.
#[derive(Debug)]
pub struct ControlThrottle {
    origin: Instant,
    buckets: Mutex<HashMap<ControlKey, TokenBucket>>,
}

impl ControlThrottle {
    /// The node's limiter under `limits`; `None` when limits are off.
    pub fn for_limits(limits: Limits) -> Option<ControlThrottle> {
        match limits {
            Limits::Aws => Some(ControlThrottle::new()),
            Limits::Off => None,
        }
    }

    pub fn new() -> ControlThrottle {
        ControlThrottle {
            origin: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call of `operation` by `account` (on `stream` for per-stream rates) at
    /// `now_ns`; `false` when its bucket is empty.
    pub fn admit_at(
        &self,
        account: &str,
        operation: &'static str,
        stream: Option<&str>,
        now_ns: Nanos,
    ) -> bool {
        let Some((rate, scope)) = control_rate(operation) else {
            return true;
        };
        let key = ControlKey {
            account: account.to_owned(),
            operation,
            stream: match scope {
                Scope::Stream => Some(stream.unwrap_or_default().to_owned()),
                Scope::Account => None,
            },
        };
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= CONTROL_KEYS_PRUNE_AT && !buckets.contains_key(&key) {
            buckets.retain(|_, bucket| !bucket.is_full(now_ns));
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(rate, rate, now_ns))
            .try_take(1, now_ns)
    }

    /// Entries held (for tests of the pruning).
    pub fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ns(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for ControlThrottle {
    fn default() -> ControlThrottle {
        ControlThrottle::new()
    }
}

/// The stream a control-plane request addresses, by name or from its ARN, for its rate key
/// and its refusal text. ListShards with only a NextToken names it inside the token.
fn addressed_stream(node: &Node, request: &Request) -> Option<String> {
    let (name, arn) = match request {
        Request::CreateStream(input) => (input.stream_name.as_deref(), None),
        Request::DeleteStream(input) => (input.stream_name.as_deref(), input.stream_arn.as_deref()),
        Request::DescribeStream(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::DescribeStreamSummary(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::ListShards(input) => match (&input.stream_name, &input.stream_arn) {
            (None, None) => {
                let token = input.next_token.as_deref()?;
                let (position, _, _) =
                    riffle_proto::token::decode_page_token(token, &node.token_key).ok()?;
                return position.split('\n').next().map(str::to_owned);
            }
            (name, arn) => (name.as_deref(), arn.as_deref()),
        },
        Request::IncreaseStreamRetentionPeriod(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::DecreaseStreamRetentionPeriod(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::AddTagsToStream(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::RemoveTagsFromStream(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::ListTagsForStream(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::TagResource(input) => (None, input.resource_arn.as_deref()),
        Request::UntagResource(input) => (None, input.resource_arn.as_deref()),
        Request::ListTagsForResource(input) => (None, input.resource_arn.as_deref()),
        Request::SplitShard(input) => (input.stream_name.as_deref(), input.stream_arn.as_deref()),
        Request::MergeShards(input) => (input.stream_name.as_deref(), input.stream_arn.as_deref()),
        Request::UpdateShardCount(input) => {
            (input.stream_name.as_deref(), input.stream_arn.as_deref())
        }
        Request::UpdateStreamMode(input) => (None, input.stream_arn.as_deref()),
        Request::UpdateMaxRecordSize(input) => (None, input.stream_arn.as_deref()),
        Request::UpdateStreamRecordDistributionStrategy(input) => {
            (None, input.stream_arn.as_deref())
        }
        _ => (None, None),
    };
    match (name, arn) {
        (Some(name), _) => Some(name.to_owned()),
        (None, Some(arn)) => riffle_proto::arn::parse_stream_arn(arn).map(|arn| arn.name),
        (None, None) => None,
    }
}

/// Admits one control-plane call, or refuses it with LimitExceededException: `Rate exceeded
/// for stream S under account A.` for calls on a stream, `Rate exceeded for account A.` for
/// the account-wide ones (CreateStream, ListStreams, DescribeLimits, account settings).
/// Data-plane calls pass untouched; so does everything when limits are off.
pub fn admit_control(node: &Node, caller: &Caller, request: &Request) -> Result<(), Error> {
    let Some(throttle) = &node.control_throttle else {
        return Ok(());
    };
    let operation = request.operation();
    if control_rate(operation).is_none() {
        return Ok(());
    }
    let stream = addressed_stream(node, request);
    if throttle.admit_at(
        &caller.account,
        operation,
        stream.as_deref(),
        throttle.now_ns(),
    ) {
        return Ok(());
    }
    Err(match stream {
        Some(stream) if !account_level(operation) => {
            Error::stream_rate_exceeded(&stream, &caller.account)
        }
        _ => Error::account_rate_exceeded(&caller.account),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;
    const MILLISECOND: Nanos = 1_000_000;
    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_full_bucket_admits_its_capacity_at_once_then_the_rate() {
        let mut bucket = TokenBucket::full(5, 5, 0);
        for call in 0..5 {
            assert!(bucket.try_take(1, 0), "call {call} is within the burst");
        }
        assert!(!bucket.try_take(1, 0), "the sixth call at once is refused");
        // 5 per second: one token every 200 ms, none before.
        assert!(!bucket.try_take(1, 199 * MILLISECOND));
        assert!(bucket.try_take(1, 200 * MILLISECOND));
        assert!(!bucket.try_take(1, 200 * MILLISECOND));
    }

    #[test]
    fn refusals_take_nothing() {
        let mut bucket = TokenBucket::full(10, 10, 0);
        assert!(bucket.try_take(10, 0));
        for _ in 0..100 {
            assert!(!bucket.try_take(1, 50 * MILLISECOND));
        }
        assert_eq!(bucket.tokens(100 * MILLISECOND), 1);
    }

    #[test]
    fn refill_stops_at_the_capacity() {
        let mut bucket = TokenBucket::full(1000, 1000, 0);
        assert!(bucket.try_take(1000, 0));
        assert_eq!(bucket.tokens(3600 * SECOND), 1000);
        assert!(bucket.is_full(3600 * SECOND));
        assert!(
            !bucket.try_take(1001, 3600 * SECOND),
            "no more than the capacity banks"
        );
    }

    #[test]
    fn a_clock_value_from_before_the_last_one_adds_nothing() {
        let mut bucket = TokenBucket::full(1, 1, 10 * SECOND);
        assert!(bucket.try_take(1, 10 * SECOND));
        assert!(!bucket.try_take(1, 5 * SECOND));
        assert!(bucket.try_take(1, 11 * SECOND));
    }

    /// Over any window of t seconds a bucket admits at most capacity + rate × t, however the
    /// demand is spread: checked for a pseudo-random demand with the clock driven by hand.
    #[test]
    fn admitted_never_exceeds_burst_plus_rate_times_elapsed() {
        let rate = 1000;
        let mut bucket = TokenBucket::full(rate, rate, 0);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut now = 0;
        let mut admitted: Vec<Nanos> = Vec::new();
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            now += seed % (3 * MILLISECOND);
            if bucket.try_take(1, now) {
                admitted.push(now);
            }
        }
        for (first, &start) in admitted.iter().enumerate() {
            for window in [SECOND / 10, SECOND, 5 * SECOND] {
                let count = admitted[first..]
                    .iter()
                    .take_while(|&&at| at - start <= window)
                    .count() as u64;
                let bound = rate + rate * window / SECOND;
                assert!(
                    count <= bound,
                    "{count} admitted within {window} ns of {start}"
                );
            }
        }
    }

    #[test]
    fn a_shard_takes_1000_records_at_once_and_then_1000_per_second() {
        let mut write = WriteBuckets::full(0);
        let admitted = (0..3000).filter(|_| write.admit(10, 0)).count();
        assert_eq!(admitted, 1000);
        // Half a second later, half a second of records.
        let admitted = (0..3000)
            .filter(|_| write.admit(10, 500 * MILLISECOND))
            .count();
        assert_eq!(admitted, 500);
    }

    #[test]
    fn a_shard_takes_1_mib_at_once_and_then_1_mib_per_second() {
        let mut write = WriteBuckets::full(0);
        let record = 100 * 1024;
        let admitted = (0..30).filter(|_| write.admit(record, 0)).count();
        assert_eq!(admitted, 10, "ten 100 KiB records fit in 1 MiB");
        assert_eq!(
            write.records.tokens(0),
            990,
            "the records bucket was charged for the admitted records only"
        );
        // 24 KiB are left; the missing 76 KiB accrue in 76/1024 s, about 74.2 ms.
        assert!(!write.admit(record, 74 * MILLISECOND));
        assert!(write.admit(record, 75 * MILLISECOND));
        assert!(!write.admit(record, 75 * MILLISECOND));
    }

    #[test]
    fn a_refused_large_record_does_not_stop_a_smaller_one() {
        let mut write = WriteBuckets::full(0);
        assert!(write.admit(700 * 1024, 0));
        assert!(!write.admit(400 * 1024, 0), "over the remaining bytes");
        assert!(write.admit(300 * 1024, 0), "fits what is left");
    }

    #[test]
    fn a_10_mib_record_borrows_from_the_next_nine_seconds() {
        let mut write = WriteBuckets::full(0);
        assert!(
            write.admit(10 * MIB, 0),
            "a full bucket takes a 10 MiB record"
        );
        assert_eq!(write.bytes.tokens(0), -9 * MIB as i64);
        assert!(!write.admit(1, 8 * SECOND), "still in debt after 8 s");
        assert!(write.admit(1, 9 * SECOND + MILLISECOND));
        // A second large record needs a full bucket again: 1 MiB banked.
        let mut write = WriteBuckets::full(0);
        assert!(write.admit(2 * MIB, 0));
        assert!(!write.admit(2 * MIB, 1500 * MILLISECOND));
        assert!(write.admit(2 * MIB, 2 * SECOND));
    }

    #[test]
    fn a_large_record_needs_a_full_bucket() {
        let mut write = WriteBuckets::full(0);
        assert!(write.admit(1, 0));
        assert!(!write.admit(5 * MIB, 0), "1 byte short of a full bucket");
        assert!(write.admit(5 * MIB, SECOND));
    }

    #[test]
    fn reads_admit_five_calls_a_second() {
        let mut read = ReadBuckets::full(0);
        let admitted = (0..20).filter(|_| read.admit(0)).count();
        assert_eq!(admitted, 5);
        assert!(!read.admit(199 * MILLISECOND));
        assert!(read.admit(200 * MILLISECOND));
    }

    #[test]
    fn a_10_mib_read_refuses_reads_for_about_four_seconds() {
        let mut read = ReadBuckets::full(0);
        assert!(read.admit(0));
        read.charge(10 * MIB, 0);
        assert_eq!(read.bytes.tokens(0), -8 * MIB as i64);
        for at in [SECOND, 2 * SECOND, 3 * SECOND, 4 * SECOND] {
            assert!(!read.admit(at), "still in read debt at {at} ns");
        }
        assert!(read.admit(4 * SECOND + MILLISECOND));
    }

    #[test]
    fn reads_that_stay_at_2_mib_per_second_are_not_refused() {
        let mut read = ReadBuckets::full(0);
        // Four calls a second, 512 KiB each, for a minute.
        for call in 0..240u64 {
            let at = call * 250 * MILLISECOND;
            assert!(read.admit(at), "call {call}");
            read.charge(512 * 1024, at);
        }
    }

    #[test]
    fn control_rates_follow_the_published_table() {
        assert_eq!(control_rate("DescribeStream"), Some((10, Scope::Account)));
        assert_eq!(
            control_rate("DescribeStreamSummary"),
            Some((20, Scope::Account))
        );
        assert_eq!(control_rate("ListShards"), Some((1000, Scope::Stream)));
        assert_eq!(control_rate("DescribeLimits"), Some((1, Scope::Account)));
        assert_eq!(control_rate("UpdateShardCount"), Some((10, Scope::Account)));
        for five in [
            "CreateStream",
            "DeleteStream",
            "ListStreams",
            "AddTagsToStream",
            "RemoveTagsFromStream",
            "ListTagsForStream",
            "MergeShards",
            "SplitShard",
            "DescribeAccountSettings",
            "UpdateMaxRecordSize",
        ] {
            assert_eq!(control_rate(five), Some((5, Scope::Account)), "{five}");
        }
        for data in ["PutRecord", "PutRecords", "GetRecords", "GetShardIterator"] {
            assert_eq!(control_rate(data), None, "{data}");
        }
    }

    #[test]
    fn control_buckets_are_per_account_and_per_stream_where_published() {
        let throttle = ControlThrottle::new();
        for _ in 0..10 {
            assert!(throttle.admit_at("111111111111", "DescribeStream", Some("a"), 0));
        }
        assert!(
            !throttle.admit_at("111111111111", "DescribeStream", Some("b"), 0),
            "DescribeStream is limited per account, whatever the stream"
        );
        assert!(throttle.admit_at("222222222222", "DescribeStream", Some("a"), 0));
        assert!(throttle.admit_at("111111111111", "DescribeStreamSummary", Some("a"), 0));
        for _ in 0..1000 {
            assert!(throttle.admit_at("111111111111", "ListShards", Some("a"), 0));
        }
        assert!(!throttle.admit_at("111111111111", "ListShards", Some("a"), 0));
        assert!(
            throttle.admit_at("111111111111", "ListShards", Some("b"), 0),
            "ListShards is limited per stream"
        );
        assert!(throttle.admit_at("111111111111", "DescribeLimits", None, 0));
        assert!(!throttle.admit_at("111111111111", "DescribeLimits", None, 0));
        assert!(throttle.admit_at("111111111111", "DescribeLimits", None, SECOND));
        assert!(throttle.admit_at("111111111111", "PutRecord", Some("a"), 0));
    }

    #[test]
    fn idle_control_buckets_are_dropped_once_the_map_is_large() {
        let throttle = ControlThrottle::new();
        let account = |index: usize| format!("{index:012}");
        for index in 0..CONTROL_KEYS_PRUNE_AT {
            assert!(throttle.admit_at(&account(index), "DescribeLimits", None, 0));
        }
        assert_eq!(throttle.len(), CONTROL_KEYS_PRUNE_AT);
        // Every bucket is empty (in use): the map grows rather than forget one.
        assert!(throttle.admit_at("fresh", "DescribeLimits", None, 0));
        assert_eq!(throttle.len(), CONTROL_KEYS_PRUNE_AT + 1);
        assert!(
            !throttle.admit_at(&account(0), "DescribeLimits", None, 0),
            "a bucket in use keeps its state"
        );
        // A second later every bucket is full again, the same as a fresh one, and goes.
        assert!(throttle.admit_at("later", "DescribeLimits", None, SECOND));
        assert_eq!(throttle.len(), 1);
    }

    /// Through the put path: a 1,500-record put on a fresh shard is cut at what the buckets
    /// allow, the refused records carry AWS's error, and the shard holds exactly the accepted
    /// ones. With limits off everything passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_records_are_never_stored() {
        use crate::data::{self, StartAt};
        use crate::meta::StreamMode;
        use crate::node::{Node, NodeConfig};
        use crate::Durability;
        use bytes::Bytes;
        use std::collections::BTreeMap;

        for limits in [Limits::Aws, Limits::Off] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = NodeConfig::new(dir.path().to_path_buf());
            config.durability = Durability::None;
            config.limits = limits;
            let node = Node::open(config).unwrap();
            let account = node.config.default_account.clone();
            let stream = {
                let _control = node.control().await;
                node.create_stream(
                    &account,
                    "s",
                    StreamMode::Provisioned,
                    1,
                    crate::node::StreamSettings::default(),
                    BTreeMap::new(),
                )
                .await
                .unwrap()
            };
            let records: Vec<(NewRecord, u128)> = (0..1500)
                .map(|index| {
                    let record = NewRecord {
                        partition_key: "k".to_owned(),
                        explicit_hash_key: None,
                        data: Bytes::from(format!("{index}")),
                    };
                    (record, 0)
                })
                .collect();
            let started = Instant::now();
            let outcomes = data::put_records(&stream, None, records).await.results;
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(outcomes.len(), 1500);
            let mut accepted = BTreeMap::new();
            let mut refused = 0;
            for (index, outcome) in outcomes.into_iter().enumerate() {
                match outcome {
                    Ok(put) => {
                        accepted.insert(put.sequence_number, index.to_string());
                    }
                    Err(error) => {
                        assert_eq!(
                            error.kind,
                            riffle_proto::ErrorKind::ProvisionedThroughputExceededException
                        );
                        assert_eq!(
                            error.message.as_deref(),
                            Some(
                                "Rate exceeded for shard shardId-000000000000 in stream s \
                                 under account 000000000000."
                            )
                        );
                        refused += 1;
                    }
                }
            }
            match limits {
                Limits::Off => assert_eq!(refused, 0),
                Limits::Aws => {
                    let bound = (1000.0 + 1000.0 * elapsed) as usize + 1;
                    assert!(accepted.len() <= bound, "{} in {elapsed} s", accepted.len());
                    assert!(accepted.len() >= 1000, "a full bucket takes 1,000 at once");
                    if 1500 > bound {
                        assert!(refused > 0);
                    }
                }
            }

            let state = stream.state();
            let shard = state.shard(0).unwrap();
            let iterator =
                data::shard_iterator(&node, &stream, shard, StartAt::TrimHorizon).unwrap();
            let data::Reading::Done(batch) = data::get_records(
                &node,
                &account,
                &iterator,
                10_000,
                |_| Ok(10 * 1024 * 1024),
                |_| Ok(()),
            )
            .unwrap() else {
                panic!("a single node reads its own shards");
            };
            let stored: BTreeMap<String, String> = batch
                .records
                .into_iter()
                .map(|(sequence_number, record)| {
                    let data = String::from_utf8(record.data.to_vec()).unwrap();
                    (sequence_number, data)
                })
                .collect();
            assert_eq!(stored, accepted, "limits {limits:?}");
        }
    }
}

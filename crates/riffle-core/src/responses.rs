//! The node-wide budget of answer bytes held in memory (`--response-memory-mib`).
//!
//! An answer lives in memory from the moment it is built until the client has taken its last
//! byte, and a client that asks for 10 MiB of records and then never reads would otherwise hold
//! them for as long as its connection lives: fifty such clients held 745 MB. The front end
//! takes a [`Lease`] for every answer body it sends, whatever the operation, sized to the
//! body's allocation and released when that allocation is freed; together with its send
//! timeout (a connection whose client takes no part of an answer for a while is closed) this
//! bounds memory and makes the slow client pay.
//!
//! Only GetRecords answers can be large, and only they are sized by the budget, before the
//! read: a GetRecords gets its full 10 MiB while the budget has room, **fewer records** when it
//! is short (a valid Kinesis answer: GetRecords may return fewer records than are available,
//! and the next iterator continues after the last one returned), and a retriable
//! InternalFailure when not even one record of the stream's largest size fits. Answers of more
//! than one record take only from the part of the budget above its last quarter
//! ([`RESERVE_DIVISOR`]): that quarter is kept for small answers, so a crowd of stalled large
//! answers cannot starve other clients' reads until the send timeout frees them. Other answers
//! are small (a page of a listing, PutRecords' result entries) and are counted but never
//! refused.
//!
//! Building a GetRecords answer (reading, checking and decoding up to 10 MiB of frames, then
//! encoding them) is CPU work of milliseconds to, in a debug build, a second. It runs outside
//! the async workers ([`ResponseBudget::build`]), at most one per CPU at once, so a crowd of
//! large reads neither queues other connections' puts and control calls behind it nor holds
//! more than a few half-built answers in memory beside the budget.
//!
//! The budget counts bytes with one atomic: a lease adds, its drop subtracts. Reads are sized
//! from an estimate of the encoded answer (base64 grows data by 4/3, plus fields per record);
//! the exact size is leased once the answer is built, so an estimate that fell short shows in
//! the next reads' room, never as unaccounted memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use riffle_proto::limits;

use crate::Error;

/// Default budget: 256 MiB, like the request-body budget.
pub const RESPONSE_MEMORY_BYTES_DEFAULT: u64 = 256 << 20;

/// The fraction of the budget (1/N) that only single-record-sized grants may use.
pub const RESERVE_DIVISOR: u64 = 4;

/// What a record costs in a JSON answer beyond its data and key: the sequence number (56
/// digits), the arrival timestamp, field names and punctuation, `EncryptionType`.
const RECORD_OVERHEAD_BYTES: u64 = 192;

/// What an answer costs beyond its records: the next iterator, MillisBehindLatest, ChildShards.
const ANSWER_OVERHEAD_BYTES: u64 = 4096;

/// An upper estimate of a GetRecords answer carrying `data_bytes` of data and partition keys in
/// `records` records (JSON base64 is the larger wire format).
pub fn answer_bytes(data_bytes: u64, records: u64) -> u64 {
    data_bytes.div_ceil(3) * 4 + records * RECORD_OVERHEAD_BYTES + ANSWER_OVERHEAD_BYTES
}

/// The data bytes a read may return so that its answer fits `answer` bytes.
fn data_bytes_for(answer: u64) -> u64 {
    answer.saturating_sub(ANSWER_OVERHEAD_BYTES) / 4 * 3
}

/// The largest GetRecords answer: 10 MiB of data. The budget is never below it, so every
/// read can run once the budget is free.
pub fn answer_bytes_max() -> u64 {
    answer_bytes(limits::GET_RECORDS_BYTES_MAX as u64, 1)
}

/// The bytes of answers held in memory, node-wide, and their limit.
#[derive(Debug)]
pub struct ResponseBudget {
    limit: u64,
    held: AtomicU64,
    /// Answers being built at once (see [`ResponseBudget::build`]).
    builders: tokio::sync::Semaphore,
}

/// Bytes counted against a [`ResponseBudget`] until dropped.
#[derive(Debug)]
pub struct Lease {
    budget: Arc<ResponseBudget>,
    bytes: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Lease {
    /// The bytes this lease counts.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Default for ResponseBudget {
    fn default() -> ResponseBudget {
        ResponseBudget::new(RESPONSE_MEMORY_BYTES_DEFAULT)
    }
}

impl ResponseBudget {
    /// A budget of `limit` bytes, at least [`answer_bytes_max`] twice over, so that one full
    /// answer always fits above the reserve.
    pub fn new(limit: u64) -> ResponseBudget {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        ResponseBudget {
            limit: limit.max(2 * answer_bytes_max()),
            held: AtomicU64::new(0),
            builders: tokio::sync::Semaphore::new(cpus.max(2)),
        }
    }

    /// Runs `build` (a large answer's read and encoding) once one of the build slots is free,
    /// on a thread the async workers can do without (`block_in_place`; inline on a
    /// current-thread runtime, which has no other worker to hand its tasks to).
    pub async fn build<T>(&self, build: impl FnOnce() -> T) -> T {
        // The semaphore is never closed.
        let _slot = self.builders.acquire().await.ok();
        let flavor = tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor());
        if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
            tokio::task::block_in_place(build)
        } else {
            build()
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes leased now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Counts `bytes` of an answer already built, whatever the budget holds (see the module
    /// documentation for why that stays bounded).
    pub fn lease(self: &Arc<Self>, bytes: u64) -> Lease {
        self.held.fetch_add(bytes, Ordering::AcqRel);
        Lease {
            budget: Arc::clone(self),
            bytes,
        }
    }

    /// Room for a GetRecords answer of at most `records` records on a stream whose records
    /// are at most `record_bytes_max` bytes: the lease, and the data bytes the read may
    /// return. Fewer than the full 10 MiB when the budget is short; an InternalFailure (which
    /// every SDK retries) when not even one record fits.
    pub fn reserve_records(
        self: &Arc<Self>,
        records: usize,
        record_bytes_max: u64,
    ) -> Result<(Lease, usize), Error> {
        let wanted = answer_bytes(limits::GET_RECORDS_BYTES_MAX as u64, records as u64);
        let floor = answer_bytes(record_bytes_max, 1).min(wanted);
        let mut held = self.held();
        loop {
            let Some(granted) = grant(self.limit, held, wanted, floor) else {
                return Err(Error::internal(
                    "The server is at its response memory budget; retry later.",
                ));
            };
            match self.held.compare_exchange_weak(
                held,
                held + granted,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let lease = Lease {
                        budget: Arc::clone(self),
                        bytes: granted,
                    };
                    let data_bytes = usize::try_from(data_bytes_for(granted)).unwrap_or(usize::MAX);
                    return Ok((lease, data_bytes.min(limits::GET_RECORDS_BYTES_MAX)));
                }
                Err(now) => held = now,
            }
        }
    }
}

/// How much of a budget of `limit` with `held` leased a read wanting `wanted` bytes gets, at
/// least `floor` (one record of the stream's largest size), or `None`. Beyond `floor`, only
/// the part above the reserve (`limit / RESERVE_DIVISOR`) is given out.
fn grant(limit: u64, held: u64, wanted: u64, floor: u64) -> Option<u64> {
    let free = limit.saturating_sub(held);
    let above_reserve = free.saturating_sub(limit / RESERVE_DIVISOR);
    if above_reserve >= floor {
        Some(above_reserve.min(wanted))
    } else if free >= floor {
        Some(floor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn grants_shrink_to_one_record_then_stop() {
        let limit = 256 * MIB;
        let (wanted, floor) = (14 * MIB, 2 * MIB);
        assert_eq!(grant(limit, 0, wanted, floor), Some(wanted));
        // Above the reserve, what is left of it.
        assert_eq!(grant(limit, 180 * MIB, wanted, floor), Some(12 * MIB));
        // In the reserve, one record's worth at a time.
        assert_eq!(grant(limit, 191 * MIB, wanted, floor), Some(floor));
        assert_eq!(grant(limit, 254 * MIB, wanted, floor), Some(floor));
        assert_eq!(grant(limit, 255 * MIB, wanted, floor), None);
        assert_eq!(grant(limit, 300 * MIB, wanted, floor), None);
    }

    /// Stalled readers each keep what they were granted: the full answers stop at the reserve,
    /// the reserve serves one-record answers, and nothing is granted past the limit.
    #[test]
    fn leases_never_exceed_the_limit_and_free_on_drop() {
        let budget = Arc::new(ResponseBudget::new(64 * MIB));
        let limit = budget.limit();
        let mut held = Vec::new();
        let mut sizes = Vec::new();
        while let Ok((lease, data_bytes)) = budget.reserve_records(10_000, MIB) {
            assert!(
                data_bytes >= MIB as usize,
                "at least one record of the stream's size"
            );
            sizes.push(lease.bytes());
            held.push(lease);
            assert!(budget.held() <= limit);
        }
        assert_eq!(sizes[0], answer_bytes(10 << 20, 10_000));
        assert!(
            sizes.last() < sizes.first(),
            "answers shrink as room runs out"
        );
        assert!(budget.held() > limit - answer_bytes(MIB, 1));
        let error = budget.reserve_records(1, MIB).expect_err("full");
        assert_eq!(
            error.kind,
            riffle_proto::ErrorKind::InternalFailureException
        );
        drop(held);
        assert_eq!(budget.held(), 0);
        let lease = budget.lease(3 * MIB);
        assert_eq!(budget.held(), 3 * MIB);
        drop(lease);
        assert_eq!(budget.held(), 0);
    }
}

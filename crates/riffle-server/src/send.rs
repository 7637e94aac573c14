//! Sending answers: their memory is leased from the node's response budget for as long as it
//! exists, and a client that stops taking an answer loses its connection.
//!
//! An answer body ([`answer_body`]) is the encoded bytes in one allocation that owns a
//! [`Lease`] of the response budget (`riffle_core::responses`), handed to hyper in
//! [`CHUNK_BYTES`] slices. hyper takes the next slice only when its write buffer (HTTP/1.1) or
//! the stream's send buffer (HTTP/2) has room, so each slice taken is progress the client made.
//! The allocation, and the lease with it, are freed when the last slice has been written to
//! the socket or dropped with the connection: the budget counts exactly the answer bytes in
//! memory.
//!
//! Each connection has a [`SendWatch`] listing its answers still in memory and when each last
//! had a slice taken. The connection task ([`crate::transport`]) closes the connection once any
//! of them has made no progress for the send timeout (`--send-timeout-s`): whatever the client
//! does not read is dropped with it, so a client that asks for large answers and never reads
//! holds its memory for that long at most, and never more than the budget lets it have.
//! Event streams (SubscribeToShard) are not watched: they hold one event at a time, and their
//! flow control is the subscription's own.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use riffle_core::responses::{Lease, ResponseBudget};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http::ResponseBody;

/// The largest slice of an answer handed to hyper at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Default `--send-timeout-s`: how long an answer may go without the client taking any of it.
pub const SEND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// One answer in memory: when a slice of it was last taken, in [`SendWatch`] time.
#[derive(Debug, Default)]
struct AnswerClock {
    last_progress_ms: AtomicU64,
}

/// The answers of one connection still in memory, and when each last made progress.
#[derive(Debug)]
pub struct SendWatch {
    epoch: Instant,
    answers: Mutex<Vec<Weak<AnswerClock>>>,
    /// Woken when an answer starts, so an idle connection's watch sleeps without a timer.
    started: Notify,
}

impl SendWatch {
    pub fn new() -> Arc<SendWatch> {
        Arc::new(SendWatch {
            epoch: Instant::now(),
            answers: Mutex::new(Vec::new()),
            started: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn start(&self) -> Arc<AnswerClock> {
        let clock = Arc::new(AnswerClock {
            last_progress_ms: AtomicU64::new(self.now_ms()),
        });
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.retain(|answer| answer.strong_count() > 0);
        answers.push(Arc::downgrade(&clock));
        drop(answers);
        self.started.notify_one();
        clock
    }

    /// When the answer that has waited longest last made progress, if any answer is in memory.
    fn oldest_progress_ms(&self) -> Option<u64> {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.retain(|answer| answer.strong_count() > 0);
        answers
            .iter()
            .filter_map(Weak::upgrade)
            .map(|answer| answer.last_progress_ms.load(Ordering::Relaxed))
            .min()
    }

    /// Resolves once an answer of this connection has had no slice taken for `timeout`.
    pub async fn stalled(&self, timeout: Duration) {
        let timeout_ms = timeout.as_millis() as u64;
        loop {
            let started = self.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            let Some(progress_ms) = self.oldest_progress_ms() else {
                started.await;
                continue;
            };
            let idle_ms = self.now_ms().saturating_sub(progress_ms);
            if idle_ms >= timeout_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(timeout_ms - idle_ms)).await;
        }
    }
}

/// The allocation of an answer, with what it holds: its lease of the budget and its entry in
/// the connection's watch. Freed when the last slice of it is dropped.
struct Held {
    bytes: Vec<u8>,
    _lease: Lease,
    _clock: Arc<AnswerClock>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// An answer handed to hyper a slice at a time (see the module documentation).
struct AnswerBody {
    rest: Bytes,
    clock: Arc<AnswerClock>,
    watch: Arc<SendWatch>,
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(CHUNK_BYTES);
        let chunk = self.rest.split_to(take);
        let now_ms = self.watch.now_ms();
        self.clock.last_progress_ms.store(now_ms, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// The body of an answer of `bytes`, leased from `budget` and watched by `watch` until the
/// client has taken it all.
pub fn answer_body(
    mut bytes: Vec<u8>,
    budget: &Arc<ResponseBudget>,
    watch: &Arc<SendWatch>,
) -> ResponseBody {
    // An encoder's buffer grows by doubling; what it holds past the answer is returned (a
    // large allocation shrinks in place) rather than held, and counted, for the whole send.
    bytes.shrink_to_fit();
    let lease = budget.lease(bytes.capacity() as u64);
    let clock = watch.start();
    let rest = Bytes::from_owner(Held {
        bytes,
        _lease: lease,
        _clock: Arc::clone(&clock),
    });
    AnswerBody {
        rest,
        clock,
        watch: Arc::clone(watch),
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lease lasts as long as any slice of the answer, not as long as the body: hyper may
    /// still hold the last slices after the body has ended.
    #[tokio::test]
    async fn the_lease_lives_as_long_as_the_bytes() {
        let budget = Arc::new(ResponseBudget::new(0));
        let watch = SendWatch::new();
        let answer = vec![7u8; 3 * CHUNK_BYTES + 10];
        let mut body = answer_body(answer, &budget, &watch);
        assert!(budget.held() >= (3 * CHUNK_BYTES + 10) as u64);
        assert_eq!(
            body.size_hint().exact(),
            Some((3 * CHUNK_BYTES + 10) as u64)
        );
        let mut slices = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= CHUNK_BYTES);
            slices.push(data);
        }
        assert_eq!(slices.len(), 4);
        drop(body);
        assert!(budget.held() > 0, "slices still in memory");
        assert!(watch.oldest_progress_ms().is_some(), "and still watched");
        drop(slices);
        assert_eq!(budget.held(), 0);
        assert_eq!(watch.oldest_progress_ms(), None);
    }

    /// An answer nobody takes trips the watch after the timeout; taking slices keeps it quiet,
    /// and a connection without answers never trips.
    #[tokio::test(start_paused = true)]
    async fn the_watch_trips_on_an_answer_without_progress() {
        let budget = Arc::new(ResponseBudget::default());
        let watch = SendWatch::new();
        let timeout = Duration::from_secs(30);
        let idle = tokio::time::timeout(Duration::from_secs(3600), watch.stalled(timeout)).await;
        assert!(idle.is_err(), "no answer, no stall");

        let mut body = answer_body(vec![0u8; 4 * CHUNK_BYTES], &budget, &watch);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let polled = tokio::time::timeout(Duration::ZERO, watch.stalled(timeout)).await;
            assert!(polled.is_err(), "progress every 20 s is not a stall");
            body.frame().await.unwrap().unwrap();
        }
        let started = tokio::time::Instant::now();
        watch.stalled(timeout).await;
        assert_eq!(started.elapsed(), timeout);
    }
}

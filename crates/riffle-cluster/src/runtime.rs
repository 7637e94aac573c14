//! The async runtime riffle runs openraft on: tokio, with openraft's randomness drawn from a
//! seed when the caller asks for one.
//!
//! openraft draws randomness in two places, both through `AsyncRuntime::thread_rng`: each
//! election timeout and the phase of its tick. Outside [`RiffleRuntime::seeded`] (everywhere
//! in production) this runtime is openraft's `TokioRuntime`: spawns are `tokio::spawn`, and
//! `thread_rng` hands out a small generator seeded from the thread's RNG (one draw of the
//! thread RNG per call, so the timeouts are as random as before). Inside a seeded scope,
//! spawns and draws go through openraft's `DeterministicRng<TokioRuntime>`, which gives each
//! spawned task a seed derived from its parent's, so a task tree started from one seed draws
//! the same numbers in the same order on every run. The simulator (riffle-sim) starts each
//! node inside such a scope.
//!
//! One more thing draws on randomness that no seed reaches: tokio's watch channel parks each
//! waiting receiver in one of eight lists picked by the tokio runtime's RNG, which a stable
//! tokio (without `--cfg tokio_unstable`) seeds from the OS. When several tasks wait on one
//! channel (a leader's replication streams do), the order they wake in, and with it the order
//! their messages leave, changes from run to run. So openraft's watch here is tokio's with one
//! change, and only for channels made inside a seeded scope: their receivers wait on a
//! `Notify` of the channel's own, which wakes them in the order they started waiting
//! ([`RiffleWatch`]). Outside a scope it is tokio's watch unchanged.
//!
//! Why a wrapper, and not `DeterministicRng` itself as riffle's runtime: outside a scope it
//! panics (its seed is a task-local that only its `scope` or `block_on` sets), and openraft
//! spawns tasks from API calls made on the caller's own tasks (`Raft::stream_append`), so
//! every task of the server that touches a Raft would need a scope, and a missed one would
//! be a panic in production. Why not a second type configuration for the simulator: the log
//! store, its codec, the state machines and the peer network are written against
//! [`RiffleRaft`](crate::RiffleRaft) (see the crate docs), and all of them would become
//! generic for the simulator's sake.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::rt::deterministic_rng::DeterministicRng;
use openraft::rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
use openraft::rt::{AsyncRuntime, OptionalSend, OptionalSync, Select2, Select3, Select4};
use openraft_rt_tokio::TokioRuntime;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{watch as tokio_watch, Notify};

type Seeded = DeterministicRng<TokioRuntime>;

tokio::task_local! {
    /// Set for every task of a seeded tree: `DeterministicRng` keeps its seed in a
    /// task-local of its own, which it does not let anyone ask about.
    static IN_SEEDED_SCOPE: ();
}

thread_local! {
    static UNSEEDED_USES: Cell<u64> = const { Cell::new(0) };
}

/// tokio for openraft, seedable per task tree (see the module docs).
#[derive(Debug)]
pub struct RiffleRuntime {
    inner: TokioRuntime,
}

impl RiffleRuntime {
    /// Runs `future` with openraft's randomness drawn from `seed`: every task openraft (or
    /// the caller, through this runtime's `spawn`) spawns under it inherits a seed derived
    /// from this one.
    pub fn seeded<F: Future>(seed: u64, future: F) -> impl Future<Output = F::Output> {
        IN_SEEDED_SCOPE.scope((), Seeded::scope(seed, future))
    }

    /// Whether the calling task runs inside [`RiffleRuntime::seeded`].
    pub fn is_seeded() -> bool {
        IN_SEEDED_SCOPE.try_with(|_| ()).is_ok()
    }

    /// How many times this thread has spawned through this runtime, or drawn from its RNG,
    /// outside a seeded scope. The simulator runs a whole cluster on one thread and checks
    /// that this does not move: a draw that escaped the seed would make a run unrepeatable.
    pub fn unseeded_uses_on_this_thread() -> u64 {
        UNSEEDED_USES.with(Cell::get)
    }

    fn count_unseeded() {
        UNSEEDED_USES.with(|uses| uses.set(uses.get() + 1));
    }
}

impl AsyncRuntime for RiffleRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        if RiffleRuntime::is_seeded() {
            Seeded::spawn(IN_SEEDED_SCOPE.scope((), future))
        } else {
            RiffleRuntime::count_unseeded();
            TokioRuntime::spawn(future)
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn select2<A, B>(
        a: A,
        b: B,
    ) -> impl Future<Output = Select2<A::Output, B::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
    {
        TokioRuntime::select2(a, b)
    }

    fn select3<A, B, C>(
        a: A,
        b: B,
        c: C,
    ) -> impl Future<Output = Select3<A::Output, B::Output, C::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
    {
        TokioRuntime::select3(a, b, c)
    }

    fn select4<A, B, C, D>(
        a: A,
        b: B,
        c: C,
        d: D,
    ) -> impl Future<Output = Select4<A::Output, B::Output, C::Output, D::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
        D: Future + OptionalSend,
    {
        TokioRuntime::select4(a, b, c, d)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        if RiffleRuntime::is_seeded() {
            Seeded::thread_rng()
        } else {
            RiffleRuntime::count_unseeded();
            SmallRng::from_rng(&mut rand::rng())
        }
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = RiffleWatch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        RiffleRuntime {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TokioRuntime::spawn_blocking(f)
    }
}

/// openraft's watch channel: tokio's, whose receivers wait in a fixed order when the channel
/// was made inside a seeded scope (see the module docs).
pub struct RiffleWatch;

/// The sending half of a [`RiffleWatch`] channel.
pub struct RiffleWatchSender<T> {
    /// `None` only while the sender is being dropped (so the close happens before the wake).
    tx: Option<tokio_watch::Sender<T>>,
    /// Set for a channel made in a seeded scope: what its receivers wait on.
    ordered: Option<Arc<Notify>>,
}

/// The receiving half of a [`RiffleWatch`] channel.
pub struct RiffleWatchReceiver<T> {
    rx: tokio_watch::Receiver<T>,
    ordered: Option<Arc<Notify>>,
}

impl<T> Clone for RiffleWatchSender<T> {
    fn clone(&self) -> Self {
        RiffleWatchSender {
            tx: self.tx.clone(),
            ordered: self.ordered.clone(),
        }
    }
}

impl<T> Clone for RiffleWatchReceiver<T> {
    fn clone(&self) -> Self {
        RiffleWatchReceiver {
            rx: self.rx.clone(),
            ordered: self.ordered.clone(),
        }
    }
}

impl<T> Drop for RiffleWatchSender<T> {
    fn drop(&mut self) {
        // Close first (if this was the last sender), then wake: a receiver woken before the
        // close could see neither a change nor the close and wait for ever.
        drop(self.tx.take());
        if let Some(notify) = &self.ordered {
            notify.notify_waiters();
        }
    }
}

impl<T> RiffleWatchSender<T> {
    fn tx(&self) -> &tokio_watch::Sender<T> {
        self.tx
            .as_ref()
            .expect("a watch sender holds its channel until it is dropped")
    }

    fn wake(&self) {
        if let Some(notify) = &self.ordered {
            notify.notify_waiters();
        }
    }
}

impl Watch for RiffleWatch {
    type Sender<T: OptionalSend + OptionalSync> = RiffleWatchSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = RiffleWatchReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = tokio_watch::Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (Self::Sender<T>, Self::Receiver<T>) {
        let (tx, rx) = tokio_watch::channel(init);
        let ordered = if RiffleRuntime::is_seeded() {
            Some(Arc::new(Notify::new()))
        } else {
            RiffleRuntime::count_unseeded();
            None
        };
        let sender = RiffleWatchSender {
            tx: Some(tx),
            ordered: ordered.clone(),
        };
        (sender, RiffleWatchReceiver { rx, ordered })
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<RiffleWatch, T> for RiffleWatchSender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx().send(value).map_err(|error| SendError(error.0))?;
        self.wake();
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let modified = self.tx().send_if_modified(modify);
        if modified {
            self.wake();
        }
        modified
    }

    fn borrow_watched(&self) -> tokio_watch::Ref<'_, T> {
        self.tx().borrow()
    }

    fn subscribe(&self) -> RiffleWatchReceiver<T> {
        RiffleWatchReceiver {
            rx: self.tx().subscribe(),
            ordered: self.ordered.clone(),
        }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<RiffleWatch, T> for RiffleWatchReceiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        let Some(notify) = self.ordered.clone() else {
            return self.rx.changed().await.map_err(|_| RecvError(()));
        };
        // tokio's `changed`, waiting on the channel's own Notify: a value not yet seen is
        // reported even after the close, and the close only once everything was seen.
        loop {
            // Registered before looking, so a send between the look and the wait still wakes.
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            let closed = self.rx.has_changed().is_err();
            if self.rx.borrow_and_update().has_changed() {
                return Ok(());
            }
            if closed {
                return Err(RecvError(()));
            }
            notified.await;
        }
    }

    fn borrow_watched(&self) -> tokio_watch::Ref<'_, T> {
        self.rx.borrow()
    }

    fn borrow_and_update(&mut self) -> tokio_watch::Ref<'_, T> {
        self.rx.borrow_and_update()
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn draws() -> Vec<u64> {
        (0..4)
            .map(|_| RiffleRuntime::thread_rng().random_range(0..1_000_000))
            .collect()
    }

    async fn draws_here_and_in_a_spawned_task() -> (Vec<u64>, Vec<u64>) {
        let here = draws();
        let spawned = RiffleRuntime::spawn(async { draws() })
            .await
            .expect("the task ran");
        (here, spawned)
    }

    #[tokio::test]
    async fn a_seed_replays_its_draws_in_spawned_tasks_too() {
        let before = RiffleRuntime::unseeded_uses_on_this_thread();
        let first = RiffleRuntime::seeded(7, draws_here_and_in_a_spawned_task()).await;
        let again = RiffleRuntime::seeded(7, draws_here_and_in_a_spawned_task()).await;
        let other = RiffleRuntime::seeded(8, draws_here_and_in_a_spawned_task()).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        // The child's draws are its own, not a replay of its parent's.
        assert_ne!(first.0, first.1);
        assert_eq!(RiffleRuntime::unseeded_uses_on_this_thread(), before);
    }

    type Suite = openraft::rt::testing::Suite<RiffleRuntime>;

    #[test]
    fn openraft_s_runtime_suite_passes_outside_a_seeded_scope() {
        Suite::test_all();
    }

    #[test]
    fn openraft_s_watch_and_spawn_checks_pass_inside_a_seeded_scope() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(RiffleRuntime::seeded(3, async {
            Suite::test_spawn_join_handle().await;
            Suite::test_thread_rng().await;
            Suite::test_watch_init_value().await;
            Suite::test_watch_overwrite_init_value().await;
            Suite::test_watch_send_error_no_receiver().await;
            Suite::test_watch_send_if_modified().await;
            Suite::test_watch_wait_until_ge().await;
            Suite::test_watch_wait_until().await;
            Suite::test_watch_changed_marks_as_seen().await;
            Suite::test_watch_borrow_and_update_marks_seen().await;
            Suite::test_watch_changed_returns_immediately_when_unseen().await;
            Suite::test_watch_multiple_borrow_then_changed().await;
            Suite::test_watch_wait_loop_pattern().await;
            Suite::test_watch_multiple_receivers().await;
            Suite::test_watch_subscribe().await;
            Suite::test_watch_send_if_different().await;
            Suite::test_watch_send_if_greater().await;
        }));
    }

    #[tokio::test]
    async fn a_seeded_watch_wakes_its_receivers_in_the_order_they_waited() {
        RiffleRuntime::seeded(5, async {
            let (tx, rx) = RiffleWatch::channel(0u32);
            let woken = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for waiter in 0..6 {
                let mut rx = rx.clone();
                let woken = woken.clone();
                tasks.push(RiffleRuntime::spawn(async move {
                    rx.changed().await.expect("a change");
                    woken.lock().expect("not poisoned").push(waiter);
                }));
                // Let it start waiting before the next one does.
                tokio::task::yield_now().await;
            }
            tx.send(1).expect("receivers are there");
            for task in tasks {
                task.await.expect("the waiter ran");
            }
            assert_eq!(*woken.lock().expect("not poisoned"), vec![0, 1, 2, 3, 4, 5]);
        })
        .await;
    }

    #[tokio::test]
    async fn a_seeded_watch_reports_the_last_value_then_the_close() {
        RiffleRuntime::seeded(6, async {
            let (tx, mut rx) = RiffleWatch::channel(0u32);
            let waiting = RiffleRuntime::spawn(async move {
                let mut seen = Vec::new();
                while rx.changed().await.is_ok() {
                    seen.push(*rx.borrow_watched());
                }
                seen
            });
            tokio::task::yield_now().await;
            tx.send(7).expect("a receiver is there");
            // Dropped before the receiver ran: it still sees 7, then the close.
            drop(tx);
            assert_eq!(waiting.await.expect("the receiver ran"), vec![7]);
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_scope_it_is_plain_tokio_with_random_draws() {
        assert!(!RiffleRuntime::is_seeded());
        let before = RiffleRuntime::unseeded_uses_on_this_thread();
        let (here, spawned) = draws_here_and_in_a_spawned_task().await;
        // Eight draws of a million values each: equal only by a 1 in 10^48 chance.
        assert_ne!(here, spawned);
        assert_ne!(here, draws());
        // The test's own thread saw the draws here (the spawned task may run elsewhere).
        assert!(RiffleRuntime::unseeded_uses_on_this_thread() >= before + 2);
    }
}

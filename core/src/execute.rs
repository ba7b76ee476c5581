//! Run async Rust through a [`Pipeline`] without choosing a runtime (feature `futures`).
//!
//! [`AsyncPipeline`] drives the step protocol with a host-supplied [`Sleeper`] (tokio's,
//! async-std's, smol's timer, or a fake one in tests): attempts race their deadline, backoff
//! and rate-limit waits sleep, bulkhead waiters park until a released slot wakes them. Dropping
//! the future cancels the call in the pipeline, so a cancelled caller never leaks a slot.
//!
//! ```
//! # use tripwire_core::execute::{AsyncPipeline, Sleeper, ExecuteError};
//! # use tripwire_core::pipeline::{Pipeline, Report};
//! # use tripwire_core::Instant;
//! # use std::cell::Cell;
//! # use std::future::{ready, Ready};
//! /// Virtual time: sleeping jumps the clock (a real host wraps its runtime's timer).
//! struct Virtual(Cell<u64>);
//! impl Sleeper for &Virtual {
//!     type Sleep = Ready<()>;
//!     fn now(&self) -> Instant { Instant::from_nanos(self.0.get()) }
//!     fn sleep_until(&self, until: Instant) -> Ready<()> {
//!         self.0.set(self.0.get().max(until.as_nanos()));
//!         ready(())
//!     }
//! }
//! let clock = Virtual(Cell::new(0));
//! let p = Pipeline::from_json(r#"{"retry": {"maxRetries": 2}}"#, 7).unwrap();
//! let p = AsyncPipeline::new(p, &clock);
//! let out: Result<u32, ExecuteError<&str>> = futures::executor::block_on(p.execute(
//!     None,
//!     |attempt| async move { if attempt < 2 { Err("flaky") } else { Ok(attempt) } },
//!     |_err| Report::failure(true, None),
//! ));
//! assert_eq!(out.unwrap(), 2);
//! ```

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::future::{select, Either};

use crate::pipeline::{CallId, Failure, IdMap, Pipeline, Report, Step};
use crate::store::{StoreReply, StoreRequest};
use crate::time::Instant;

/// The host's store client for a pipeline with a shared rate limit (`store` in its config).
/// Keep SCALE-OUT.md's rules: `EVALSHA`, `EVAL` once only on `NOSCRIPT`, never resend, no
/// client-side retries or offline queue. [`AsyncPipeline`] enforces the request's timeout.
pub trait AsyncStore {
    /// Run `request` once.
    fn run(&self, request: StoreRequest) -> Pin<Box<dyn Future<Output = StoreReply> + '_>>;
}

/// The host's clock and timer.
pub trait Sleeper {
    /// The future [`Sleeper::sleep_until`] returns.
    type Sleep: Future<Output = ()>;
    /// The host's monotonic time.
    fn now(&self) -> Instant;
    /// A future that completes at `until` (at once when it has passed).
    fn sleep_until(&self, until: Instant) -> Self::Sleep;
}

/// Why [`AsyncPipeline::execute`] produced no value.
#[derive(Debug)]
pub enum ExecuteError<E> {
    /// A policy refused or ended the call; no function error is attached (a rejection, a
    /// timeout, a deadline, a budget...). `failure.kind` says which.
    Rejected(Failure),
    /// The call failed with the function's own error: `failure.kind` is `failure` (propagate
    /// it unchanged) or `retriesExhausted` / `budgetExhausted` / `deadlineExceeded` with this
    /// error as the last attempt's.
    Failed {
        /// The last attempt's error.
        error: E,
        /// How the pipeline ended the call.
        failure: Failure,
    },
}

impl<E: fmt::Display> fmt::Display for ExecuteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Rejected(fail) => write!(f, "{}", fail.kind),
            ExecuteError::Failed { error, failure } => write!(f, "{}: {error}", failure.kind),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ExecuteError<E> {}

#[derive(Debug)]
struct Shared {
    pipeline: Pipeline,
    /// Parked calls whose slot was granted and that have not resumed yet.
    granted: IdMap<()>,
    /// Wakers of parked calls.
    wakers: IdMap<Waker>,
}

impl Shared {
    /// After any input: move granted wakes to their waiting futures.
    fn drain_wakes(&mut self) {
        while let Some(id) = self.pipeline.poll_wake() {
            let raw = id.to_raw();
            self.granted.insert(raw, ());
            if let Some(w) = self.wakers.remove(&raw) {
                w.wake();
            }
        }
    }
}

/// A [`Pipeline`] shared by many concurrent async calls.
#[derive(Debug)]
pub struct AsyncPipeline<S> {
    shared: Mutex<Shared>,
    sleeper: S,
    store: Option<Box<dyn AsyncStore>>,
}

impl fmt::Debug for dyn AsyncStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncStore")
    }
}

impl<S: Sleeper> AsyncPipeline<S> {
    /// Wrap `pipeline`, sleeping with `sleeper`.
    pub fn new(pipeline: Pipeline, sleeper: S) -> AsyncPipeline<S> {
        AsyncPipeline {
            shared: Mutex::new(Shared {
                pipeline,
                granted: IdMap::default(),
                wakers: IdMap::default(),
            }),
            sleeper,
            store: None,
        }
    }

    /// Run the pipeline's store requests with `store` (without one, a store request is
    /// answered `Unavailable` and `store.onUnavailable` decides).
    #[must_use]
    pub fn with_store(mut self, store: impl AsyncStore + 'static) -> AsyncPipeline<S> {
        self.store = Some(Box::new(store));
        self
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere cannot leave the pipeline half-updated (every method completes
        // its state change before returning), so a poisoned lock is still consistent.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f(attempt)` through the pipeline. `classify` turns the function's error into the
    /// attempt's [`Report`] (retryable? ignored? a Retry-After hint?).
    pub async fn execute<T, E, F, Fut>(
        &self,
        deadline: Option<Instant>,
        mut f: F,
        classify: impl Fn(&E) -> Report,
    ) -> Result<T, ExecuteError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let call = self.lock().pipeline.begin(self.sleeper.now(), deadline);
        let mut guard = CallGuard {
            owner: self,
            call,
            live: true,
        };
        let mut value: Option<T> = None;
        let mut last_error: Option<E> = None;
        loop {
            let step = {
                let mut shared = self.lock();
                let step = shared.pipeline.poll(call, self.sleeper.now());
                shared.drain_wakes();
                step
            };
            // The handle is ours and only this loop drives it, so misuse cannot happen.
            let Ok(step) = step else { unreachable_step() };
            match step {
                Step::Attempt { attempt, deadline } => {
                    let fut = f(attempt);
                    let result = match deadline {
                        Some(d) => {
                            let fut = core::pin::pin!(fut);
                            let sleep = core::pin::pin!(self.sleeper.sleep_until(d));
                            match select(fut, sleep).await {
                                Either::Left((r, _)) => Some(r),
                                // Dropping the attempt's future cancels it before we report.
                                Either::Right(((), _)) => None,
                            }
                        }
                        None => Some(fut.await),
                    };
                    let report = match &result {
                        Some(Ok(_)) => Report::SUCCESS,
                        Some(Err(e)) => classify(e),
                        None => Report::TIMEOUT,
                    };
                    {
                        let mut shared = self.lock();
                        let _ = shared.pipeline.report(call, report, self.sleeper.now());
                        shared.drain_wakes();
                    }
                    match result {
                        Some(Ok(v)) => value = Some(v),
                        Some(Err(e)) => last_error = Some(e),
                        None => last_error = None,
                    }
                }
                Step::Store { request, until } => {
                    let request = self.lock().pipeline.store_request(request).cloned();
                    let reply = match (request, &self.store) {
                        (Some(request), Some(store)) => {
                            let run = store.run(request);
                            // Made when first polled: a virtual-time sleeper that jumps its
                            // clock on creation must not expire a reply that is already there.
                            let sleep =
                                core::pin::pin!(async { self.sleeper.sleep_until(until).await });
                            match select(run, sleep).await {
                                Either::Left((reply, _)) => reply,
                                Either::Right(((), _)) => StoreReply::Timeout,
                            }
                        }
                        _ => StoreReply::Unavailable,
                    };
                    let mut shared = self.lock();
                    let _ = shared
                        .pipeline
                        .report_store(call, reply, self.sleeper.now());
                    shared.drain_wakes();
                }
                // A sleeper that wakes early only costs another poll: the pipeline answers
                // with the same `Sleep` until the host's clock reaches `until`.
                Step::Sleep { until } => self.sleeper.sleep_until(until).await,
                Step::Park { until, .. } => {
                    let park = Park {
                        owner: self,
                        raw: call.to_raw(),
                    };
                    match until {
                        Some(u) => {
                            let sleep = core::pin::pin!(self.sleeper.sleep_until(u));
                            let _ = select(park, sleep).await;
                        }
                        None => park.await,
                    }
                    let mut shared = self.lock();
                    shared.wakers.remove(&call.to_raw());
                }
                Step::Done { .. } => {
                    guard.live = false;
                    return Ok(value.take().unwrap_or_else(|| unreachable_step()));
                }
                Step::Fail(failure) => {
                    guard.live = false;
                    return Err(match last_error.take() {
                        Some(error) if failure.kind != crate::ErrorKind::Timeout => {
                            ExecuteError::Failed { error, failure }
                        }
                        _ => ExecuteError::Rejected(failure),
                    });
                }
            }
        }
    }
    /// Run `f` with the pipeline locked (stats, events, breaker controls, reconfigure).
    /// Do not call [`Pipeline::poll_wake`] inside: the wakes belong to the parked calls of
    /// [`AsyncPipeline::execute`], which this wrapper hands to them after `f` returns.
    pub fn with_pipeline<R>(&self, f: impl FnOnce(&mut Pipeline) -> R) -> R {
        let mut shared = self.lock();
        let r = f(&mut shared.pipeline);
        shared.drain_wakes();
        r
    }
}

#[cold]
fn unreachable_step() -> ! {
    // The loop only polls after the previous step was handled, with a handle it owns.
    panic!("tripwire: the step protocol was driven out of order")
}

/// Cancels the call in the pipeline when the `execute` future is dropped mid-way.
struct CallGuard<'a, S: Sleeper> {
    owner: &'a AsyncPipeline<S>,
    call: CallId,
    live: bool,
}

impl<S: Sleeper> Drop for CallGuard<'_, S> {
    fn drop(&mut self) {
        let mut shared = self.owner.lock();
        let raw = self.call.to_raw();
        // Always: a grant that raced the park's timeout may still be recorded for this call.
        shared.wakers.remove(&raw);
        shared.granted.remove(&raw);
        if self.live {
            let _ = shared.pipeline.cancel(self.call, self.owner.sleeper.now());
            shared.drain_wakes();
        }
    }
}

/// Waits until the bulkhead hands this parked call a slot.
struct Park<'a, S: Sleeper> {
    owner: &'a AsyncPipeline<S>,
    raw: u64,
}

impl<S: Sleeper> Future for Park<'_, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.owner.lock();
        if shared.granted.remove(&self.raw).is_some() {
            shared.wakers.remove(&self.raw);
            Poll::Ready(())
        } else {
            shared.wakers.insert(self.raw, cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ErrorKind;
    use std::cell::Cell;
    use std::future::{ready, Ready};
    use std::rc::Rc;

    /// Virtual time: sleeping jumps the clock to the wake-up instant.
    #[derive(Clone, Default)]
    struct FakeSleeper(Rc<Cell<u64>>);

    impl Sleeper for FakeSleeper {
        type Sleep = Ready<()>;
        fn now(&self) -> Instant {
            Instant::from_nanos(self.0.get())
        }
        fn sleep_until(&self, until: Instant) -> Ready<()> {
            self.0.set(self.0.get().max(until.as_nanos()));
            ready(())
        }
    }

    fn pipeline(json: &str) -> (AsyncPipeline<FakeSleeper>, FakeSleeper) {
        let s = FakeSleeper::default();
        (
            AsyncPipeline::new(Pipeline::from_json(json, 1).unwrap(), s.clone()),
            s,
        )
    }

    #[test]
    fn retries_with_backoff_in_virtual_time() {
        let (p, clock) = pipeline(
            r#"{"retry": {"maxRetries": 3, "backoff": {"type": "constant", "base": "1s", "jitter": "none"}}}"#,
        );
        let out: Result<u32, ExecuteError<&str>> = futures::executor::block_on(p.execute(
            None,
            |n| async move {
                if n < 3 {
                    Err("flaky")
                } else {
                    Ok(n)
                }
            },
            |_| Report::failure(true, None),
        ));
        assert_eq!(out.unwrap(), 3);
        assert_eq!(clock.0.get(), 2_000_000_000, "two backoffs of 1 s slept");
    }

    #[test]
    fn exhausted_retries_carry_the_last_error() {
        let (p, _) =
            pipeline(r#"{"retry": {"maxRetries": 1, "backoff": {"type": "constant", "base": 1}}}"#);
        let out: Result<(), ExecuteError<String>> = futures::executor::block_on(p.execute(
            None,
            |n| async move { Err(format!("boom {n}")) },
            |_| Report::failure(true, None),
        ));
        match out {
            Err(ExecuteError::Failed { error, failure }) => {
                assert_eq!(error, "boom 2");
                assert_eq!(failure.kind, ErrorKind::RetriesExhausted);
                assert_eq!(failure.attempts, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hanging_attempt_times_out_at_its_deadline() {
        let (p, clock) = pipeline(r#"{"timeout": {"perAttempt": "250ms"}}"#);
        let out: Result<(), ExecuteError<()>> = futures::executor::block_on(p.execute(
            None,
            |_| futures::future::pending(),
            |_| Report::SUCCESS,
        ));
        match out {
            Err(ExecuteError::Rejected(f)) => assert_eq!(f.kind, ErrorKind::Timeout),
            other => panic!("{other:?}"),
        }
        assert_eq!(clock.0.get(), 250_000_000);
    }

    #[test]
    fn a_parked_call_runs_when_the_slot_is_released_and_a_dropped_call_frees_its_slot() {
        use futures::channel::oneshot;
        let (p, _) = pipeline(r#"{"bulkhead": {"maxConcurrent": 1, "maxQueue": 1}}"#);
        let (tx, rx) = oneshot::channel::<()>();
        let rx = std::cell::RefCell::new(Some(rx));
        let first = p.execute(
            None,
            |_| {
                let rx = rx.borrow_mut().take();
                async move {
                    if let Some(rx) = rx {
                        let _ = rx.await;
                    }
                    Ok::<_, ()>(1)
                }
            },
            |_| Report::SUCCESS,
        );
        let second = p.execute(None, |_| async { Ok::<_, ()>(2) }, |_| Report::SUCCESS);
        let release = async {
            tx.send(()).unwrap();
        };
        let (a, b, ()) =
            futures::executor::block_on(async { futures::join!(first, second, release) });
        assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
        p.with_pipeline(|p| {
            let b = p.stats().bulkhead.unwrap();
            assert_eq!((b.in_flight, b.queue_depth, b.woken), (0, 0, 1));
        });

        // A caller that gives up mid-attempt (its future dropped) frees the slot.
        let mut hung = Box::pin(p.execute(
            None,
            |_| futures::future::pending::<Result<(), ()>>(),
            |_| Report::SUCCESS,
        ));
        let waker = futures::task::noop_waker();
        assert!(hung
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(
            p.with_pipeline(|p| p.stats().bulkhead.unwrap().in_flight),
            1
        );
        drop(hung);
        let s = p.with_pipeline(|p| p.stats());
        assert_eq!((s.bulkhead.unwrap().in_flight, s.cancelled), (0, 1));
    }

    /// A store that answers from memory at the sleeper's time, or never (a hung store).
    struct TestStore {
        memory: std::cell::RefCell<crate::store::MemoryStore>,
        clock: FakeSleeper,
        hung: bool,
    }

    impl AsyncStore for TestStore {
        fn run(&self, request: StoreRequest) -> Pin<Box<dyn Future<Output = StoreReply> + '_>> {
            if self.hung {
                return Box::pin(std::future::pending());
            }
            let reply = self.memory.borrow_mut().run(&request, self.clock.now());
            Box::pin(ready(reply))
        }
    }

    #[test]
    fn store_steps_run_through_the_async_store_and_a_hung_store_times_out() {
        let config = r#"{"rateLimit": {"algorithm": "gcra", "rate": "1/s", "burst": 2},
                         "store": {"key": "k", "timeout": "25ms", "onUnavailable": "deny"}}"#;
        let (p, clock) = pipeline(config);
        let store = TestStore {
            memory: Default::default(),
            clock: clock.clone(),
            hung: false,
        };
        let p = p.with_store(store);
        let run = || {
            futures::executor::block_on(p.execute(
                None,
                |_| async { Ok::<u32, &str>(7) },
                |_| Report::failure(true, None),
            ))
        };
        assert_eq!(run().unwrap(), 7);
        assert_eq!(run().unwrap(), 7);
        match run() {
            Err(ExecuteError::Rejected(f)) => assert_eq!(f.kind, ErrorKind::RateLimited),
            other => panic!("the shared burst of 2 is spent: {other:?}"),
        }
        let stats = p.with_pipeline(|p| p.stats()).store.unwrap();
        assert_eq!((stats.store_allowed, stats.store_denied), (2, 1));

        // A store that never answers: the call waits exactly the timeout, then `deny` decides.
        let (p, clock) = pipeline(config);
        let p = p.with_store(TestStore {
            memory: Default::default(),
            clock: clock.clone(),
            hung: true,
        });
        let out = futures::executor::block_on(p.execute(
            None,
            |_| async { Ok::<u32, &str>(7) },
            |_| Report::failure(true, None),
        ));
        assert!(matches!(out, Err(ExecuteError::Rejected(f)) if f.kind == ErrorKind::RateLimited));
        assert_eq!(clock.now(), Instant::from_nanos(25_000_000));
        assert_eq!(p.with_pipeline(|p| p.stats()).store.unwrap().timeouts, 1);
    }
}

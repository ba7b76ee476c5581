//! What every opaque handle is made of: the core object behind one mutex (so handles may be
//! shared between threads), an optional event listener, and the after-input drain.

use std::ffi::c_void;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{tw_status, Error};

/// A C context pointer. The library never dereferences it; the caller promises that using it
/// from whichever thread calls back is fine (the documented contract of every listener).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx(pub(crate) *mut c_void);

// SAFETY: only handed back to the caller's own callbacks, per the header's threading contract.
unsafe impl Send for Ctx {}
// SAFETY: as above; the library only copies the pointer.
unsafe impl Sync for Ctx {}

/// A core object that queues events.
pub(crate) trait Drain {
    /// The C event type.
    type Event: Copy + std::fmt::Debug;
    /// The oldest queued event, converted.
    fn pop_event(&mut self) -> Option<Self::Event>;
}

/// A registered listener: the C function and its context.
pub(crate) type Listener<E> = (unsafe extern "C" fn(*mut c_void, *const E), Ctx);

/// The state behind a handle's mutex.
#[derive(Debug)]
pub(crate) struct Locked<T: Drain> {
    pub(crate) inner: T,
    listener: Option<Listener<T::Event>>,
}

/// A handle: the core object behind one mutex, and a condition variable that blocking helpers
/// wait on while parked.
#[derive(Debug)]
pub(crate) struct Shared<T: Drain> {
    state: Mutex<Locked<T>>,
    pub(crate) cv: Condvar,
}

/// Events drained per batch before the mutex is released to deliver them.
const BATCH: usize = 16;

impl<T: Drain> Shared<T> {
    pub(crate) fn new(inner: T) -> Shared<T> {
        Shared {
            state: Mutex::new(Locked {
                inner,
                listener: None,
            }),
            cv: Condvar::new(),
        }
    }

    /// Lock the handle. A mutex poisoned by an earlier panic is an error, never a crash.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Locked<T>>, Error> {
        self.state.lock().map_err(|_| poisoned())
    }

    /// Run `f` on the core object under the lock, then drain its events to the listener (if
    /// any) outside the lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> Result<R, Error>) -> Result<R, Error> {
        let mut guard = self.lock()?;
        let result = f(&mut guard.inner);
        self.release(guard);
        result
    }

    /// Release the lock after an input, delivering queued events to the listener (if any).
    pub(crate) fn release<'a>(&'a self, mut guard: MutexGuard<'a, Locked<T>>) {
        let Some((listener, ctx)) = guard.listener else {
            return;
        };
        loop {
            let mut batch: [Option<T::Event>; BATCH] = [None; BATCH];
            let mut n = 0;
            while n < BATCH {
                match guard.inner.pop_event() {
                    Some(e) => {
                        batch[n] = Some(e);
                        n += 1;
                    }
                    None => break,
                }
            }
            drop(guard);
            for e in batch.iter().take(n).flatten() {
                // SAFETY: the listener and its context were registered by the caller, who
                // promised they are callable from any thread using the handle.
                unsafe { listener(ctx.0, e) };
            }
            if n < BATCH {
                return;
            }
            guard = match self.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
        }
    }

    /// Set (or with `None`, remove) the listener. Events already queued are delivered to the
    /// new listener at the next input.
    pub(crate) fn set_listener(&self, listener: Option<Listener<T::Event>>) -> Result<(), Error> {
        self.lock()?.listener = listener;
        Ok(())
    }
}

pub(crate) fn poisoned() -> Error {
    Error::new(
        tw_status::Poisoned,
        "an earlier call panicked inside this handle; its state may be inconsistent: free it",
    )
}

/// Borrow a handle from a C pointer.
///
/// # Safety
/// `p` is NULL or a live handle of this type.
pub(crate) unsafe fn handle<'a, H>(p: *const H, what: &'static str) -> Result<&'a H, Error> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::null(what))
}

/// Free a handle made by `Box::into_raw`.
///
/// # Safety
/// `p` is NULL or a live handle of this type, not used afterwards.
pub(crate) unsafe fn free<H>(p: *mut H) {
    crate::error::guard_value((), || {
        if !p.is_null() {
            // SAFETY: per the contract, `p` came from Box::into_raw and is freed once.
            drop(unsafe { Box::from_raw(p) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Counter(u32);

    impl Drain for Counter {
        type Event = u32;
        fn pop_event(&mut self) -> Option<u32> {
            None
        }
    }

    #[test]
    fn a_panic_inside_a_handle_poisons_it_into_an_error() {
        let shared = Shared::new(Counter(0));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = shared.with(|c| -> Result<(), Error> {
                c.0 += 1;
                panic!("inside the core");
            });
        }));
        assert!(caught.is_err());
        let e = shared.with(|c| Ok(c.0)).unwrap_err();
        assert_eq!(e.status, tw_status::Poisoned);
    }
}

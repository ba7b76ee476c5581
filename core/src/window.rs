//! The circuit breaker's outcome windows: the last N calls, or B time buckets.
//!
//! Both are allocated once, at construction, and never grow: recording an outcome and
//! reading the totals touch only preallocated memory, so the breaker's hot path does not
//! allocate and its memory is bounded by the window's size.

use crate::time::Instant;

/// Calls, failures and slow calls held by a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub calls: u64,
    pub failures: u64,
    pub slow: u64,
}

/// The outcomes of the last `size` recorded calls, oldest overwritten first.
///
/// Two bits per call (failed, slow) in one buffer of `2·⌈size/64⌉` words: the failure words,
/// then the slow words. Totals are kept as running counts so reading them is O(1).
#[derive(Clone, Debug)]
pub(crate) struct CountWindow {
    bits: Box<[u64]>,
    words: usize,
    size: u32,
    /// The slot the next outcome is written to; when `len == size` also the oldest slot.
    head: u32,
    len: u32,
    failures: u32,
    slow: u32,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> CountWindow {
        let size = size.max(1);
        let words = (size as usize).div_ceil(64);
        CountWindow {
            bits: vec![0; 2 * words].into_boxed_slice(),
            words,
            size,
            head: 0,
            len: 0,
            failures: 0,
            slow: 0,
        }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    fn bit(&self, base: usize, slot: u32) -> bool {
        self.bits[base + slot as usize / 64] >> (slot % 64) & 1 == 1
    }

    fn set_bit(&mut self, base: usize, slot: u32, on: bool) {
        let word = &mut self.bits[base + slot as usize / 64];
        let mask = 1u64 << (slot % 64);
        if on {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }

    pub(crate) fn record(&mut self, failed: bool, slow: bool) {
        let slot = self.head;
        if self.len == self.size {
            // The oldest outcome slides out of the window.
            if self.bit(0, slot) {
                self.failures -= 1;
            }
            if self.bit(self.words, slot) {
                self.slow -= 1;
            }
        } else {
            self.len += 1;
        }
        self.set_bit(0, slot, failed);
        self.set_bit(self.words, slot, slow);
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
        self.head = if slot + 1 == self.size { 0 } else { slot + 1 };
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            calls: u64::from(self.len),
            failures: u64::from(self.failures),
            slow: u64::from(self.slow),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bits.fill(0);
        self.head = 0;
        self.len = 0;
        self.failures = 0;
        self.slow = 0;
    }

    /// The held outcomes, oldest first, as `(failed, slow)`.
    pub(crate) fn outcomes(&self) -> impl Iterator<Item = (bool, bool)> + '_ {
        let start = if self.len == self.size { self.head } else { 0 };
        (0..self.len).map(move |i| {
            let slot = ((u64::from(start) + u64::from(i)) % u64::from(self.size)) as u32;
            (self.bit(0, slot), self.bit(self.words, slot))
        })
    }

    /// Heap bytes owned.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.len() * size_of::<u64>()
    }
}

/// One time bucket: the outcomes recorded while `now / width == epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub epoch: u64,
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

/// `B` buckets of `width` nanoseconds each, aligned to multiples of `width` (bucket `e` covers
/// `[e·width, (e+1)·width)`). At instant `t` the window is the bucket holding `t` (the current,
/// partial one) plus the `B − 1` before it: epochs `t/width − B + 1 ..= t/width`.
///
/// Bucket `e` lives in slot `e mod B`. `head` is the newest epoch the window has advanced to;
/// every slot holding counts holds an epoch in `head − B + 1 ..= head`, and the running totals
/// are the sum of those slots.
#[derive(Clone, Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width: u64,
    head: u64,
    totals: Totals,
}

impl TimeWindow {
    /// `count` buckets of `width` ns (both clamped to at least 1).
    pub(crate) fn new(width: u64, count: u32) -> TimeWindow {
        TimeWindow {
            buckets: vec![Bucket::default(); count.max(1) as usize].into_boxed_slice(),
            width: width.max(1),
            head: 0,
            totals: Totals::default(),
        }
    }

    pub(crate) fn width(&self) -> u64 {
        self.width
    }

    pub(crate) fn count(&self) -> u32 {
        self.buckets.len() as u32
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.as_nanos() / self.width
    }

    /// Move the window forward to `epoch`, dropping the buckets that age out. Costs at most B
    /// steps however far time jumps.
    fn advance(&mut self, epoch: u64) {
        if epoch <= self.head {
            return;
        }
        if epoch - self.head >= self.len() {
            self.buckets.fill(Bucket::default());
            self.totals = Totals::default();
        } else {
            for e in self.head + 1..=epoch {
                let slot = (e % self.len()) as usize;
                let old = self.buckets[slot];
                self.totals.calls -= u64::from(old.calls);
                self.totals.failures -= u64::from(old.failures);
                self.totals.slow -= u64::from(old.slow);
                self.buckets[slot] = Bucket {
                    epoch: e,
                    ..Bucket::default()
                };
            }
        }
        self.head = epoch;
    }

    pub(crate) fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        let epoch = self.epoch(now);
        self.advance(epoch);
        // `now` never precedes `head` (the breaker clamps time), but a restore at an earlier
        // host instant could leave `epoch < head`: count the call in the newest bucket then.
        let epoch = epoch.max(self.head);
        let slot = (epoch % self.len()) as usize;
        let bucket = &mut self.buckets[slot];
        bucket.epoch = epoch;
        if bucket.calls == u32::MAX {
            // 4 billion calls inside one bucket: further ones are not counted, which keeps the
            // bucket and the running totals consistent.
            return;
        }
        bucket.calls += 1;
        bucket.failures += u32::from(failed);
        bucket.slow += u32::from(slow);
        self.totals.calls += 1;
        self.totals.failures += u64::from(failed);
        self.totals.slow += u64::from(slow);
    }

    /// The totals the window would hold at `now`, without moving it.
    pub(crate) fn totals_at(&self, now: Instant) -> Totals {
        let epoch = self.epoch(now);
        if epoch <= self.head {
            return self.totals;
        }
        if epoch - self.head >= self.len() {
            return Totals::default();
        }
        let mut t = self.totals;
        for e in self.head + 1..=epoch {
            let old = self.buckets[(e % self.len()) as usize];
            t.calls -= u64::from(old.calls);
            t.failures -= u64::from(old.failures);
            t.slow -= u64::from(old.slow);
        }
        t
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.totals = Totals::default();
    }

    /// The non-empty buckets live at `now`, as `(age in buckets, bucket)`; age 0 is the
    /// current partial bucket.
    pub(crate) fn live(&self, now: Instant) -> impl Iterator<Item = (u64, Bucket)> + '_ {
        let current = self.epoch(now).max(self.head);
        // Epoch e sits at index e % len: walk back from the current bucket, youngest first.
        (0..self.len().min(current + 1)).filter_map(move |age| {
            let b = self.buckets[((current - age) % self.len()) as usize];
            (b.calls > 0 && b.epoch == current - age).then_some((age, b))
        })
    }

    /// Replace the contents with `buckets` given by age before `now` (age 0 = current bucket).
    /// Ages outside the window, or before the origin, are skipped.
    pub(crate) fn load(
        &mut self,
        now: Instant,
        buckets: impl Iterator<Item = (u64, u32, u32, u32)>,
    ) {
        self.clear();
        let current = self.epoch(now);
        self.head = current;
        for (age, calls, failures, slow) in buckets {
            if age >= self.len() || age > current {
                continue;
            }
            let epoch = current - age;
            let bucket = &mut self.buckets[(epoch % self.len()) as usize];
            *bucket = Bucket {
                epoch,
                calls,
                failures: failures.min(calls),
                slow: slow.min(calls),
            };
            self.totals.calls += u64::from(bucket.calls);
            self.totals.failures += u64::from(bucket.failures);
            self.totals.slow += u64::from(bucket.slow);
        }
    }

    /// Heap bytes owned.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: u64) -> Instant {
        Instant::from_nanos(ns)
    }

    #[test]
    fn count_window_slides_over_the_last_n_outcomes() {
        let mut w = CountWindow::new(3);
        w.record(true, false);
        w.record(false, true);
        assert_eq!(
            w.totals(),
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        w.record(true, true);
        w.record(false, false); // evicts the first failure
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failures: 1,
                slow: 2
            }
        );
        let held: Vec<_> = w.outcomes().collect();
        assert_eq!(held, vec![(false, true), (true, true), (false, false)]);
        w.clear();
        assert_eq!(w.totals(), Totals::default());
        assert_eq!(w.outcomes().count(), 0);
    }

    #[test]
    fn count_window_matches_a_naive_model_across_word_boundaries() {
        let mut w = CountWindow::new(130);
        let mut model: std::collections::VecDeque<(bool, bool)> = Default::default();
        for i in 0u32..1000 {
            let o = (i % 3 == 0, i % 7 == 0);
            w.record(o.0, o.1);
            model.push_back(o);
            if model.len() > 130 {
                model.pop_front();
            }
            let f = model.iter().filter(|o| o.0).count() as u64;
            let s = model.iter().filter(|o| o.1).count() as u64;
            assert_eq!(
                w.totals(),
                Totals {
                    calls: model.len() as u64,
                    failures: f,
                    slow: s
                }
            );
        }
        assert!(w.outcomes().eq(model.iter().copied()));
    }

    #[test]
    fn time_window_ages_whole_buckets_at_aligned_boundaries() {
        // 5 buckets of 10 ns: at t the window is epochs t/10-4 ..= t/10.
        let mut w = TimeWindow::new(10, 5);
        w.record(t(3), true, false); // epoch 0
        w.record(t(17), false, true); // epoch 1
        assert_eq!(
            w.totals_at(t(49)),
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // At 50 the current bucket is epoch 5; epoch 0 falls out even though 3 + 50 > 50.
        assert_eq!(
            w.totals_at(t(50)),
            Totals {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
        assert_eq!(w.totals_at(t(60)), Totals::default());
        w.record(t(51), true, false);
        assert_eq!(
            w.totals_at(t(51)),
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // A huge jump clears everything in at most B steps.
        w.record(Instant::MAX, true, true);
        assert_eq!(
            w.totals_at(Instant::MAX),
            Totals {
                calls: 1,
                failures: 1,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_live_buckets_round_trip_through_load() {
        let mut w = TimeWindow::new(10, 4);
        w.record(t(5), true, false);
        w.record(t(25), false, false);
        w.record(t(31), false, true);
        // Buckets that aged out since the last record are not live, even though the window
        // has not moved yet.
        let mut aged = TimeWindow::new(10, 5);
        aged.record(t(3), true, false);
        assert_eq!(
            aged.live(t(49)).map(|(age, _)| age).collect::<Vec<_>>(),
            vec![4]
        );
        assert_eq!(aged.live(t(50)).count(), 0);
        let live: Vec<_> = w.live(t(39)).collect();
        // Youngest first (the snapshot's order), though the ring holds them oldest first here.
        assert_eq!(
            live.iter().map(|(age, _)| *age).collect::<Vec<_>>(),
            [0, 1, 3]
        );
        let mut other = TimeWindow::new(10, 4);
        other.load(
            t(1_000),
            live.iter()
                .map(|(age, b)| (*age, b.calls, b.failures, b.slow)),
        );
        assert_eq!(other.totals_at(t(1_000)), w.totals_at(t(39)));
        // The oldest (age 3) ages out one bucket later, exactly as it would have.
        assert_eq!(other.totals_at(t(1_010)).failures, 0);
        assert_eq!(other.totals_at(t(1_010)).calls, 2);
    }
}

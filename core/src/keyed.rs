//! A bounded map from string keys (a user, a host, a tenant) to small per-key state machines:
//! keyed rate limiters now, keyed circuit breakers later.
//!
//! Memory is bounded two ways (DESIGN.md §3.5): at most `max_keys` entries, and entries left
//! unused for `idle_expiry` are dropped. Both only ever drop an entry whose state is *idle*
//! ([`KeyedState::is_idle`]): a fresh state would behave exactly the same, so eviction loses
//! nothing. A limited key or an open breaker is never evicted, so cycling through new keys can
//! not reset someone's limit.
//!
//! ## Order and eviction
//!
//! Entries sit in a recency list (most recently used first). When the map is full, an insert
//! examines at most [`EVICTION_SCAN`] entries from the least-recently-used end and evicts the
//! first idle one. An examined entry that is not idle is moved to the recent end ("second
//! chance"): it is busy now, and looking at it again on the very next insert would waste the
//! scan. The bound keeps an insert O(1) when every key is limited (a flood of new keys must not
//! cost O(max_keys) each); the price is that an idle entry deeper than the scan is found only by
//! a later insert, after the busy ones have rotated away. When no idle entry is found the insert
//! fails and the caller decides; the keyed rate limiter then denies (fails closed).
//!
//! Expiry is incremental: every lookup first examines up to [`EXPIRY_STEP`] entries at the
//! least-recently-used end and drops those unused for at least `idle_expiry` that are idle, so
//! memory follows traffic without a host timer. [`Keyed::sweep`] drops every expired idle entry
//! at once.
//!
//! ## Hashing
//!
//! SipHash-1-3 keyed from the seed: keys are attacker-chosen strings, so the hash must not be
//! predictable, but the core takes no OS randomness (the host or the config supplies the seed).

use core::time::Duration;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::rng::Rng;
use crate::time::{duration_nanos, Instant, Monotonic};

/// The most entries one insert examines, from the least-recently-used end, to find an idle
/// entry to evict when the map is full.
pub const EVICTION_SCAN: usize = 64;

/// The most entries one lookup examines, from the least-recently-used end, for expiry.
pub const EXPIRY_STEP: usize = 2;

/// Per-key state that a [`Keyed`] map may evict when it is idle.
pub trait KeyedState {
    /// Whether the state at `now` is indistinguishable from a fresh one, so evicting it (and
    /// re-creating it on the next use) loses nothing: a full rate limiter, a closed breaker
    /// with nothing recorded.
    fn is_idle(&self, now: Instant) -> bool;

    /// The instant from which the state is idle if nothing else happens, when known. Used to
    /// tell a caller refused for a full map when a slot should free up.
    fn idle_at(&self) -> Option<Instant> {
        None
    }

    /// Heap bytes the state owns besides its own `size_of` (for memory estimates).
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// The map's `BuildHasher`: SipHash-1-3 with two keys drawn from a seed.
#[derive(Clone, Debug)]
pub struct SeededSipHasher {
    k0: u64,
    k1: u64,
}

impl SeededSipHasher {
    /// Keys derived from `seed` through SplitMix64, so nearby seeds give unrelated keys.
    #[must_use]
    pub fn new(seed: u64) -> SeededSipHasher {
        let mut rng = Rng::new(seed);
        SeededSipHasher {
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        }
    }
}

impl BuildHasher for SeededSipHasher {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// The map is full and none of the entries examined was idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// The earliest instant at which one of the examined entries becomes idle, when their
    /// states know it: a retry from then on finds room unless other keys take it first.
    pub retry_at: Option<Instant>,
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Slot<V> {
    key: Arc<str>,
    last_used: Instant,
    /// Toward the most recently used end.
    prev: u32,
    /// Toward the least recently used end.
    next: u32,
    value: V,
}

/// A bounded map from string keys to per-key states, with recency order, idle expiry and
/// eviction that never drops a non-idle entry. See the module docs.
///
/// Layout: entries live densely in a `Vec` (removal swaps the last entry in), linked into a
/// recency list by `u32` indices; a `HashMap<Arc<str>, u32>` finds them. The key string is one
/// shared allocation, referenced by both.
#[derive(Debug)]
pub struct Keyed<V> {
    map: HashMap<Arc<str>, u32, SeededSipHasher>,
    slots: Vec<Slot<V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    max_keys: usize,
    idle_expiry: Option<u64>,
    clock: Monotonic,
    evicted: u64,
    expired: u64,
}

impl<V: KeyedState> Keyed<V> {
    /// An empty map holding at most `max_keys` entries (capped at `u32::MAX - 1`), dropping
    /// idle entries unused for `idle_expiry` (never, when `None`), hashing with SipHash-1-3
    /// keyed from `seed`. Allocates nothing until the first insert.
    #[must_use]
    pub fn new(max_keys: usize, idle_expiry: Option<Duration>, seed: u64) -> Self {
        Keyed {
            map: HashMap::with_hasher(SeededSipHasher::new(seed)),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            max_keys: max_keys.min(NIL as usize - 1),
            idle_expiry: idle_expiry.map(duration_nanos),
            clock: Monotonic::new(),
            evicted: 0,
            expired: 0,
        }
    }

    /// The entry for `key`, created with `make` when absent; `None` when the map is full and
    /// no idle entry could be evicted (see [`Keyed::try_get_or_insert_with`]).
    pub fn get_or_insert_with(
        &mut self,
        key: &str,
        now: Instant,
        make: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        self.try_get_or_insert_with(key, now, make).ok()
    }

    /// The entry for `key`, marked used at `now` (clamped to the latest `now` seen), created with
    /// `make` when absent. Before the lookup, up to [`EXPIRY_STEP`] expired idle entries are
    /// dropped. A new key first evicts an idle entry when the map is full; when none of the
    /// [`EVICTION_SCAN`] examined entries is idle it fails with [`Full`] and inserts nothing.
    /// Allocates only when a new key is inserted.
    pub fn try_get_or_insert_with(
        &mut self,
        key: &str,
        now: Instant,
        make: impl FnOnce() -> V,
    ) -> Result<&mut V, Full> {
        let now = self.clock.observe(now);
        self.expire_step(now);
        if let Some(&i) = self.map.get(key) {
            self.touch(i, now);
            return Ok(&mut self.slots[i as usize].value);
        }
        // `while`: after `set_max_keys` shrank the bound, busy entries may still exceed it.
        while self.slots.len() >= self.max_keys {
            self.make_room(now)?;
        }
        let i = self.insert_new(key, now, make());
        Ok(&mut self.slots[i as usize].value)
    }

    /// The entry for `key`, without marking it used.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|&i| &self.slots[i as usize].value)
    }

    /// The entry for `key`, mutably, without marking it used.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        Some(&mut self.slots[i as usize].value)
    }

    /// Whether `key` has an entry.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Remove `key`'s entry whatever its state (an explicit host request, not an eviction).
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = *self.map.get(key)?;
        Some(self.remove_at(i))
    }

    /// Entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most entries held at once.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How long an idle entry may stay unused before it is dropped.
    #[must_use]
    pub fn idle_expiry(&self) -> Option<Duration> {
        self.idle_expiry.map(Duration::from_nanos)
    }

    /// Entries evicted to make room for new keys, since creation.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Entries dropped for idle expiry (incrementally or by [`Keyed::sweep`]), since creation.
    #[must_use]
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Drop every entry unused for at least `idle_expiry` that is idle at `now`; returns how
    /// many. O(len). Does nothing without an expiry.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let now = self.clock.observe(now);
        let Some(expiry) = self.idle_expiry else {
            return 0;
        };
        let mut dropped = 0;
        // Downward, so the entry `remove_at` swaps into `i` has already been examined.
        for i in (0..self.slots.len()).rev() {
            let slot = &self.slots[i];
            if now.nanos_since(slot.last_used) >= expiry && slot.value.is_idle(now) {
                self.remove_at(i as u32);
                dropped += 1;
            }
        }
        self.expired += dropped as u64;
        dropped
    }

    /// Every entry, in storage order (not recency order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.slots.iter().map(|s| (&*s.key, &s.value))
    }

    /// Every entry mutably, in storage order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.slots.iter_mut().map(|s| (&*s.key, &mut s.value))
    }

    /// The keys from least to most recently used.
    pub fn keys_lru(&self) -> impl Iterator<Item = &str> {
        let mut i = self.tail;
        core::iter::from_fn(move || {
            if i == NIL {
                return None;
            }
            let slot = &self.slots[i as usize];
            i = slot.prev;
            Some(&*slot.key)
        })
    }

    /// Change the bound. When shrinking, idle entries are evicted from the least-recently-used
    /// end until the map fits; entries that are not idle stay (they are never evicted), so the
    /// map may hold more than `max_keys` until they turn idle, and no new key is admitted
    /// meanwhile.
    pub fn set_max_keys(&mut self, max_keys: usize, now: Instant) {
        let now = self.clock.observe(now);
        self.max_keys = max_keys.min(NIL as usize - 1);
        let mut i = self.tail;
        while self.slots.len() > self.max_keys && i != NIL {
            let prev = self.slots[i as usize].prev;
            if self.slots[i as usize].value.is_idle(now) {
                // Removing `i` may move the last slot into `i`; if that slot was `prev`, follow it.
                let last = (self.slots.len() - 1) as u32;
                self.remove_at(i);
                self.evicted += 1;
                i = if prev == last { i } else { prev };
            } else {
                i = prev;
            }
        }
    }

    /// Change the idle expiry (entries already held keep their last-used instants).
    pub fn set_idle_expiry(&mut self, idle_expiry: Option<Duration>) {
        self.idle_expiry = idle_expiry.map(duration_nanos);
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// The same map with every value transformed, keeping keys, recency, bounds and hasher.
    pub fn map_values<W: KeyedState>(self, mut f: impl FnMut(&str, V) -> W) -> Keyed<W> {
        Keyed {
            map: self.map,
            slots: self
                .slots
                .into_iter()
                .map(|s| {
                    let value = f(&s.key, s.value);
                    Slot {
                        key: s.key,
                        last_used: s.last_used,
                        prev: s.prev,
                        next: s.next,
                        value,
                    }
                })
                .collect(),
            head: self.head,
            tail: self.tail,
            max_keys: self.max_keys,
            idle_expiry: self.idle_expiry,
            clock: self.clock,
            evicted: self.evicted,
            expired: self.expired,
        }
    }

    /// An estimate of the heap bytes held: the entry vector's capacity, the hash table's
    /// buckets (key pointer, index and one control byte each, at hashbrown's 7/8 load), each
    /// key's shared allocation (two reference counts plus the text, rounded up to a 16-byte
    /// allocator chunk with an 8-byte header) and whatever the states own.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        let slots = self.slots.capacity() * core::mem::size_of::<Slot<V>>();
        let buckets = if self.map.capacity() == 0 {
            0
        } else {
            (self.map.capacity() * 8 / 7).next_power_of_two()
        };
        let table = buckets * (core::mem::size_of::<(Arc<str>, u32)>() + 1);
        let per_key: usize = self
            .slots
            .iter()
            .map(|s| {
                (2 * core::mem::size_of::<usize>() + s.key.len() + 8)
                    .next_multiple_of(16)
                    .max(32)
                    + s.value.heap_bytes()
            })
            .sum();
        slots + table + per_key
    }

    /// `size_of` one entry's slot (key pointer, recency links, last use, state).
    #[must_use]
    pub const fn slot_size() -> usize {
        core::mem::size_of::<Slot<V>>()
    }

    fn insert_new(&mut self, key: &str, now: Instant, value: V) -> u32 {
        if self.slots.len() == self.slots.capacity() {
            // Grow geometrically but never past `max_keys`, so a full map has no slack.
            let room = self.max_keys.saturating_sub(self.slots.len()).max(1);
            self.slots
                .reserve_exact(self.slots.capacity().max(4).min(room));
        }
        let i = self.slots.len() as u32;
        let key: Arc<str> = Arc::from(key);
        self.slots.push(Slot {
            key: Arc::clone(&key),
            last_used: now,
            prev: NIL,
            next: NIL,
            value,
        });
        self.map.insert(key, i);
        self.push_front(i);
        i
    }

    /// Evict the least-recently-used idle entry among the [`EVICTION_SCAN`] oldest.
    fn make_room(&mut self, now: Instant) -> Result<(), Full> {
        let mut retry_at: Option<Instant> = None;
        for _ in 0..EVICTION_SCAN.min(self.slots.len()) {
            let i = self.tail;
            let value = &self.slots[i as usize].value;
            if value.is_idle(now) {
                self.remove_at(i);
                self.evicted += 1;
                return Ok(());
            }
            if let Some(at) = value.idle_at() {
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
            }
            // Second chance: busy now, so look at older entries first next time.
            self.unlink(i);
            self.push_front(i);
        }
        Err(Full { retry_at })
    }

    fn expire_step(&mut self, now: Instant) {
        let Some(expiry) = self.idle_expiry else {
            return;
        };
        for _ in 0..EXPIRY_STEP.min(self.slots.len()) {
            let i = self.tail;
            let slot = &self.slots[i as usize];
            if now.nanos_since(slot.last_used) < expiry {
                return;
            }
            if slot.value.is_idle(now) {
                self.remove_at(i);
                self.expired += 1;
            } else {
                // Expired but busy (say, deep in debt): let the entries behind it be examined.
                self.unlink(i);
                self.push_front(i);
            }
        }
    }

    fn touch(&mut self, i: u32, now: Instant) {
        self.slots[i as usize].last_used = now;
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.tail = i;
        } else {
            self.slots[old as usize].prev = i;
        }
        self.head = i;
    }

    fn remove_at(&mut self, i: u32) -> V {
        self.unlink(i);
        let slot = self.slots.swap_remove(i as usize);
        self.map.remove(&*slot.key);
        if (i as usize) < self.slots.len() {
            // The last slot moved into `i`: repoint its neighbours and its map entry.
            let (prev, next) = {
                let moved = &self.slots[i as usize];
                (moved.prev, moved.next)
            };
            if prev == NIL {
                self.head = i;
            } else {
                self.slots[prev as usize].next = i;
            }
            if next == NIL {
                self.tail = i;
            } else {
                self.slots[next as usize].prev = i;
            }
            let key = &self.slots[i as usize].key;
            if let Some(index) = self.map.get_mut(&**key) {
                *index = i;
            }
        }
        slot.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy until `until` (exclusive), then idle.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Busy {
        until: u64,
    }

    impl KeyedState for Busy {
        fn is_idle(&self, now: Instant) -> bool {
            now.as_nanos() >= self.until
        }
        fn idle_at(&self) -> Option<Instant> {
            Some(Instant::from_nanos(self.until))
        }
    }

    fn t(n: u64) -> Instant {
        Instant::from_nanos(n)
    }

    fn check_links<V: KeyedState>(k: &Keyed<V>) {
        let lru: Vec<&str> = k.keys_lru().collect();
        assert_eq!(lru.len(), k.len(), "list and storage disagree");
        for key in &lru {
            assert!(k.contains_key(key));
        }
        assert_eq!(k.map.len(), k.len());
        for (i, s) in k.slots.iter().enumerate() {
            assert_eq!(k.map[&*s.key] as usize, i);
        }
    }

    #[test]
    fn inserts_hits_and_evicts_the_least_recently_used_idle_entry() {
        let mut k: Keyed<Busy> = Keyed::new(3, None, 7);
        for key in ["a", "b", "c"] {
            assert!(k
                .get_or_insert_with(key, t(0), || Busy { until: 0 })
                .is_some());
        }
        // Touch "a": "b" becomes the least recently used.
        k.get_or_insert_with("a", t(1), || unreachable!()).unwrap();
        assert_eq!(k.keys_lru().collect::<Vec<_>>(), ["b", "c", "a"]);
        k.get_or_insert_with("d", t(2), || Busy { until: 0 })
            .unwrap();
        assert!(!k.contains_key("b"));
        assert_eq!(k.len(), 3);
        assert_eq!(k.evicted(), 1);
        check_links(&k);
    }

    #[test]
    fn never_evicts_a_busy_entry_and_reports_when_room_frees_up() {
        let mut k: Keyed<Busy> = Keyed::new(2, None, 7);
        k.get_or_insert_with("a", t(0), || Busy { until: 500 })
            .unwrap();
        k.get_or_insert_with("b", t(0), || Busy { until: 300 })
            .unwrap();
        let full = k
            .try_get_or_insert_with("c", t(10), || Busy { until: 0 })
            .unwrap_err();
        assert_eq!(
            full,
            Full {
                retry_at: Some(t(300))
            }
        );
        assert!(k.contains_key("a") && k.contains_key("b") && !k.contains_key("c"));
        // At 300 "b" is idle and is the one evicted, even though "a" is older in use.
        k.get_or_insert_with("c", t(300), || Busy { until: 0 })
            .unwrap();
        assert!(k.contains_key("a") && !k.contains_key("b"));
        check_links(&k);
    }

    #[test]
    fn zero_capacity_admits_nothing() {
        let mut k: Keyed<Busy> = Keyed::new(0, None, 1);
        assert_eq!(
            k.try_get_or_insert_with("a", t(0), || Busy { until: 0 })
                .unwrap_err(),
            Full { retry_at: None }
        );
        assert!(k.is_empty());
    }

    #[test]
    fn expiry_is_incremental_and_sweep_is_complete() {
        let mut k: Keyed<Busy> = Keyed::new(100, Some(Duration::from_nanos(1000)), 3);
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            k.get_or_insert_with(key, t(i as u64), || Busy { until: 0 })
                .unwrap();
        }
        // "a" is busy until 5000 although unused: expiry never drops it.
        *k.get_mut("a").unwrap() = Busy { until: 5000 };
        // At 1002, "a" (expired, busy) rotates, "b" (expired at 1001, idle) goes.
        k.get_or_insert_with("e", t(1002), || Busy { until: 0 })
            .unwrap();
        assert!(k.contains_key("a") && !k.contains_key("b"));
        assert_eq!(k.expired(), 1);
        assert_eq!(k.sweep(t(2000)), 2); // "c" and "d"; "a" busy, "e" fresh.
        assert!(k.contains_key("a") && k.contains_key("e"));
        assert_eq!(k.sweep(t(6000)), 2);
        assert!(k.is_empty());
        check_links(&k);
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut k: Keyed<Busy> = Keyed::new(10, Some(Duration::from_nanos(100)), 3);
        k.get_or_insert_with("a", t(1000), || Busy { until: 0 })
            .unwrap();
        // A clock stepping back cannot make "a" look recently used forever, nor panic.
        k.get_or_insert_with("b", t(5), || Busy { until: 0 })
            .unwrap();
        assert_eq!(k.slots[k.map["b"] as usize].last_used, t(1000));
        assert_eq!(k.sweep(t(0)), 0);
        assert_eq!(k.sweep(t(1100)), 2);
    }

    #[test]
    fn shrinking_evicts_idle_entries_only() {
        let mut k: Keyed<Busy> = Keyed::new(10, None, 3);
        for (key, until) in [("a", 0), ("b", 100), ("c", 0), ("d", 100), ("e", 0)] {
            k.get_or_insert_with(key, t(0), || Busy { until }).unwrap();
        }
        k.set_max_keys(1, t(0));
        let mut left: Vec<&str> = k.keys_lru().collect();
        left.sort_unstable();
        assert_eq!(left, ["b", "d"]);
        check_links(&k);
        assert!(k
            .try_get_or_insert_with("f", t(0), || Busy { until: 0 })
            .is_err());
    }

    #[test]
    fn seeds_change_the_hash_but_not_the_behaviour() {
        let h1 = SeededSipHasher::new(1);
        let h2 = SeededSipHasher::new(2);
        assert_ne!(h1.hash_one("user-42"), h2.hash_one("user-42"));
        assert_eq!(
            h1.hash_one("user-42"),
            SeededSipHasher::new(1).hash_one("user-42")
        );
    }

    #[test]
    fn a_shrunk_map_evicts_back_under_the_bound_before_inserting() {
        let mut k: Keyed<Busy> = Keyed::new(4, None, 3);
        for key in ["a", "b", "c", "d"] {
            k.get_or_insert_with(key, t(0), || Busy { until: 10 })
                .unwrap();
        }
        k.set_max_keys(2, t(0));
        assert_eq!(k.len(), 4, "busy entries stay");
        k.get_or_insert_with("e", t(10), || Busy { until: 0 })
            .unwrap();
        assert_eq!(k.len(), 2);
        check_links(&k);
    }

    #[test]
    fn map_values_keeps_order_and_bounds() {
        let mut k: Keyed<Busy> = Keyed::new(3, None, 3);
        for key in ["a", "b", "c"] {
            k.get_or_insert_with(key, t(0), || Busy { until: 7 })
                .unwrap();
        }
        let m = k.map_values(|key, v| Busy {
            until: v.until + key.len() as u64,
        });
        assert_eq!(m.keys_lru().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.get("b"), Some(&Busy { until: 8 }));
        assert_eq!(m.max_keys(), 3);
        check_links(&m);
    }

    #[test]
    fn growth_stops_at_max_keys() {
        let mut k: Keyed<Busy> = Keyed::new(10, None, 3);
        for i in 0..10 {
            k.get_or_insert_with(&format!("k{i}"), t(0), || Busy { until: 0 })
                .unwrap();
        }
        assert_eq!(k.slots.capacity(), 10);
        assert!(k.heap_bytes() > 10 * Keyed::<Busy>::slot_size());
    }
}

//! The `c_api` target's vocabulary (arbitrary configs, times, keys, call handles, buffers,
//! error slots) and the checks every call goes through.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};
use std::sync::Once;

use arbitrary::Arbitrary;
use tripwire::config::tw_config_validate;
use tripwire::error::{
    tw_error, tw_error_free, tw_error_message, tw_error_path, tw_error_status,
    tw_last_error_message, tw_last_error_status, tw_status,
};

pub const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Errors and statuses
// ---------------------------------------------------------------------------------------------

/// What the caller passes as `tw_error **err`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ErrOut {
    /// NULL: no error object wanted.
    Null,
    /// The address of a `tw_error *` set to NULL.
    Fresh,
    /// The address of a `tw_error *` already holding an unreleased error.
    Held,
}

/// A `tw_error` already holding an error, for `ErrOut::Held`.
fn held_error() -> *mut tw_error {
    let mut e = null_mut();
    // SAFETY: a valid pointer and length, and a writable error slot.
    let st = unsafe { tw_config_validate(99, c"{}".as_ptr(), 2, &mut e) };
    assert_eq!(st, tw_status::InvalidArgument);
    assert!(!e.is_null());
    e
}

fn error_parts(e: *const tw_error) -> (tw_status, String, String) {
    // SAFETY: a live error; its message and path are NUL-terminated strings it owns.
    unsafe {
        let msg = CStr::from_ptr(tw_error_message(e));
        let path = CStr::from_ptr(tw_error_path(e));
        (
            tw_error_status(e),
            msg.to_str().expect("message is UTF-8").to_owned(),
            path.to_str().expect("path is UTF-8").to_owned(),
        )
    }
}

fn last_error() -> (tw_status, String) {
    // SAFETY: the thread-local message is a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(tw_last_error_message()) };
    (
        tw_last_error_status(),
        msg.to_str().expect("last message is UTF-8").to_owned(),
    )
}

/// The statuses of misuse and configuration problems (the blocking helpers may also return
/// a failed call's `100 + kind`).
const MISUSE: [tw_status; 12] = [
    tw_status::Ok,
    tw_status::NullArgument,
    tw_status::InvalidArgument,
    tw_status::InvalidConfig,
    tw_status::BufferTooSmall,
    tw_status::UnknownCall,
    tw_status::AttemptInFlight,
    tw_status::NoAttemptInFlight,
    tw_status::UnknownCheck,
    tw_status::DuplicateCheck,
    tw_status::UnknownPolicy,
    tw_status::NotConfigured,
    // Panic and Poisoned are documented but are bugs: never accepted.
];

/// Every status a function that is not a blocking helper may return is a misuse status.
pub fn check_status(st: tw_status, what: &str) {
    assert!(
        st != tw_status::Panic && st != tw_status::Poisoned,
        "{what}: {st:?}: {:?}",
        last_error()
    );
    assert!(MISUSE.contains(&st), "{what}: undocumented status {st:?}");
}

/// Call `f` with an error slot of the given kind, check the status and the error, and free it.
pub fn with_err(
    mode: ErrOut,
    what: &str,
    f: impl FnOnce(*mut *mut tw_error) -> tw_status,
) -> tw_status {
    with_err_any(mode, what, false, f)
}

/// As [`with_err`]; `blocking` allows a failed call's status (`100 + kind`).
pub fn with_err_any(
    mode: ErrOut,
    what: &str,
    blocking: bool,
    f: impl FnOnce(*mut *mut tw_error) -> tw_status,
) -> tw_status {
    let held = match mode {
        ErrOut::Held => held_error(),
        _ => null_mut(),
    };
    let mut slot = held;
    let st = f(match mode {
        ErrOut::Null => null_mut(),
        _ => &mut slot,
    });
    if blocking && (st as i32) > 100 {
        assert!((st as i32) <= 109, "{what}: undocumented status {st:?}");
    } else {
        check_status(st, what);
    }
    let (last_st, last_msg) = last_error();
    if st != tw_status::Ok {
        assert_eq!(last_st, st, "{what}: the last error is this call's");
        assert!(
            !last_msg.is_empty(),
            "{what}: {st:?} with an empty last message"
        );
    }
    match mode {
        ErrOut::Null => {}
        ErrOut::Fresh if st == tw_status::Ok => {
            assert!(slot.is_null(), "{what}: an error on success");
        }
        ErrOut::Fresh => {
            assert!(!slot.is_null(), "{what}: {st:?} without an error object");
            let (e_st, msg, path) = error_parts(slot);
            assert_eq!(e_st, st, "{what}: the error's status");
            assert!(!msg.is_empty(), "{what}: {st:?} with an empty message");
            if st == tw_status::InvalidConfig && !path.is_empty() {
                assert!(
                    msg.starts_with(&path),
                    "{what}: {msg:?} does not start with its path {path:?}"
                );
            } else if st != tw_status::InvalidConfig {
                assert!(
                    path.is_empty(),
                    "{what}: {st:?} with a config path {path:?}"
                );
            }
            assert_eq!(msg, last_msg, "{what}: the error and the last error agree");
            // SAFETY: a live error, freed once.
            unsafe { tw_error_free(slot) };
        }
        ErrOut::Held => {
            assert_eq!(slot, held, "{what}: a held error was overwritten");
            // SAFETY: a live error, freed once.
            unsafe { tw_error_free(held) };
        }
    }
    st
}

// ---------------------------------------------------------------------------------------------
// Configs, times, keys
// ---------------------------------------------------------------------------------------------

/// A JSON config: a preset of the right kind (possibly cut short), one of the [`EDGES`] (of
/// any kind), arbitrary bytes, or NULL.
#[derive(Arbitrary, Debug)]
pub enum Cfg {
    Preset(u8),
    Cut(u8, u8),
    Edge(u8),
    Raw(Vec<u8>),
    Null,
}

/// Configs at the edges: names C strings cannot carry or that are empty, numbers at and past
/// the ends of their types, a byte-order mark, deep nesting.
pub const EDGES: &[&str] = &[
    r#"{"policies": {"a\u0000b": {}}}"#,
    r#"{"checks": {"a\u0000b": {}}}"#,
    r#"{"policies": {"": {}}}"#,
    r#"{"checks": {"": {}}}"#,
    "\u{feff}{}",
    r#"{"maxRetries": 4294967296}"#,
    r#"{"rate": "1e308/s", "burst": 18446744073709551615}"#,
    r#"{"trip": {"consecutiveFailures": 1}, "openDuration": "18446744073709551615ms"}"#,
    r#"{"policies": {"a": {"order": ["retry", "retry"]}}}"#,
    r#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"#,
    r#"{"seed": -1}"#,
    r#"{"perAttempt": "1ns", "overall": "1ns"}"#,
    r#"{"maxConcurrent": 4294967295, "maxQueue": 4294967295, "maxWait": "1e300s"}"#,
    r#"{"limit": {"rate": "1/ns"}, "maxKeys": 0}"#,
    r#"{"retry": {"maxRetries": 1, "backoff": {"type": "exponential", "base": "1ns", "multiplier": 1e308, "max": "1e30d"}}}"#,
    r#"{"timeout": {"perAttempt": "1ns"}, "bulkhead": {"maxConcurrent": 1, "maxQueue": 1, "maxWait": "1ns"}, "keyed": {"maxKeys": 1, "idleExpiry": "1ns"}, "rateLimit": {"rate": "1/d", "burst": 1, "maxWait": "1ns"}}"#,
];

impl Cfg {
    pub fn bytes(&self, presets: &[&str]) -> Option<Vec<u8>> {
        let pick = |i: u8| presets[usize::from(i) % presets.len()].as_bytes();
        match self {
            Cfg::Preset(i) => Some(pick(*i).to_vec()),
            Cfg::Cut(i, n) => {
                let b = pick(*i);
                Some(b[..usize::from(*n).min(b.len())].to_vec())
            }
            Cfg::Edge(i) => Some(EDGES[usize::from(*i) % EDGES.len()].as_bytes().to_vec()),
            Cfg::Raw(b) => Some(b.clone()),
            Cfg::Null => None,
        }
    }
}

/// Every preset is a valid config of its `tw_config_target` (a typo would waste the run).
pub fn once_check_presets(sets: &[(u32, &[&str])]) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (target, presets) in sets {
            for p in presets.iter() {
                let mut e = null_mut();
                // SAFETY: a valid pointer and length, and a writable error slot.
                let st = unsafe { tw_config_validate(*target, p.as_ptr().cast(), p.len(), &mut e) };
                if st != tw_status::Ok {
                    panic!("preset {p} refused: {:?}", error_parts(e));
                }
            }
        }
    });
}

/// The bytes' pointer and length; `None` is a NULL pointer with length 0.
pub fn raw(bytes: &Option<Vec<u8>>) -> (*const c_char, usize) {
    match bytes {
        Some(b) => (b.as_ptr().cast(), b.len()),
        None => (null(), 0),
    }
}

/// An instant: the host's now, the ends of time, near now, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum When {
    Now,
    Zero,
    Max,
    Later(u16),
    Earlier(u16),
    Raw(u64),
}

impl When {
    pub fn at(self, now: u64) -> u64 {
        match self {
            When::Now => now,
            When::Zero => 0,
            When::Max => u64::MAX,
            When::Later(ms) => now.saturating_add(u64::from(ms) * MS),
            When::Earlier(ms) => now.saturating_sub(u64::from(ms) * MS),
            When::Raw(t) => t,
        }
    }
}

/// A move of the host's clock.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Tick {
    Nanos(u8),
    Millis(u8),
    ManyMillis(u16),
    BackMillis(u8),
    Jump(u64),
}

impl Tick {
    pub fn apply(self, now: u64) -> u64 {
        match self {
            Tick::Nanos(n) => now.saturating_add(u64::from(n)),
            Tick::Millis(n) => now.saturating_add(u64::from(n) * MS),
            Tick::ManyMillis(n) => now.saturating_add(u64::from(n) * MS),
            Tick::BackMillis(n) => now.saturating_sub(u64::from(n) * MS),
            Tick::Jump(t) => t,
        }
    }
}

/// Key bytes: one of a few short keys, arbitrary bytes (maybe not UTF-8), or NULL.
#[derive(Arbitrary, Debug)]
pub enum Key {
    Few(u8),
    Bytes(Vec<u8>),
    Null,
}

impl Key {
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Key::Few(i) => Some(format!("k{}", i % 4).into_bytes()),
            Key::Bytes(b) => Some(b.clone()),
            Key::Null => None,
        }
    }
}

/// A NUL-terminated string from arbitrary bytes (cut at the first NUL), or NULL.
pub fn c_string(bytes: &Option<Vec<u8>>) -> Option<Vec<u8>> {
    bytes.as_ref().map(|b| {
        let mut v: Vec<u8> = b.iter().copied().take_while(|c| *c != 0).collect();
        v.push(0);
        v
    })
}

pub fn c_ptr(s: &Option<Vec<u8>>) -> *const c_char {
    s.as_ref().map_or(null(), |v| v.as_ptr().cast())
}

// ---------------------------------------------------------------------------------------------
// Text out-buffers
// ---------------------------------------------------------------------------------------------

/// The `buf`, `cap`, `needed` a caller passes to a text function.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Buf {
    /// `buf == NULL && cap == 0`: the size only.
    SizeQuery,
    /// `buf == NULL` with a capacity: a NULL argument.
    NullWithCap(u8),
    /// A real buffer of capacity 0.
    Empty,
    /// A real buffer of this capacity (often too small).
    Small(u8),
    /// A buffer large enough for anything.
    Large,
    /// A real buffer, and `needed == NULL`.
    NoNeeded(u16),
}

/// A text function's arguments after `buf`: `(buf, cap, needed, err)`.
pub type TextFn<'a> =
    dyn FnMut(*mut c_char, usize, *mut usize, *mut *mut tw_error) -> tw_status + 'a;

/// Call a text function with `buf`, check what it wrote against the header's promises, and
/// when it reports a size (size query, too small), retry with exactly that size. Returns the
/// text when one was written.
pub fn text_out(what: &str, buf: Buf, err: ErrOut, f: &mut TextFn<'_>) -> Option<String> {
    let (null_buf, cap, want_needed) = match buf {
        Buf::SizeQuery => (true, 0, true),
        Buf::NullWithCap(c) => (true, usize::from(c) + 1, true),
        Buf::Empty => (false, 0, true),
        Buf::Small(c) => (false, usize::from(c), true),
        Buf::Large => (false, 1 << 16, true),
        Buf::NoNeeded(c) => (false, usize::from(c), false),
    };
    // One byte more than `cap`: a sentinel that must stay untouched.
    let mut store = vec![0xAAu8; cap + 1];
    let ptr: *mut c_char = if null_buf {
        null_mut()
    } else {
        store.as_mut_ptr().cast()
    };
    let mut needed = usize::MAX;
    let needed_p: *mut usize = if want_needed { &mut needed } else { null_mut() };
    let st = with_err(err, what, |e| f(ptr, cap, needed_p, e));
    assert_eq!(store[cap], 0xAA, "{what}: wrote past cap {cap}");
    let size = match st {
        tw_status::Ok if null_buf => {
            assert_eq!(cap, 0, "{what}: OK with buf NULL and cap {cap}");
            assert!(
                want_needed && needed >= 1,
                "{what}: size query without a size"
            );
            Some(needed)
        }
        tw_status::Ok => {
            let text = terminated(what, &store[..cap]);
            if want_needed {
                assert_eq!(needed, text.len() + 1, "{what}: needed is the length + NUL");
            }
            return Some(text);
        }
        tw_status::BufferTooSmall => {
            assert!(!null_buf, "{what}: too small with buf NULL");
            if cap > 0 {
                assert_eq!(store[0], 0, "{what}: too small leaves an empty string");
            }
            if want_needed {
                assert!(
                    needed > cap,
                    "{what}: too small, yet needed {needed} <= cap {cap}"
                );
                Some(needed)
            } else {
                None
            }
        }
        _ => {
            if cap == 0 && !null_buf {
                assert_eq!(store[0], 0xAA, "{what}: {st:?} wrote into a 0-byte buffer");
            }
            None
        }
    };
    let need = size?;
    assert!(need < 1 << 24, "{what}: needed {need}");
    let mut exact = vec![0xAAu8; need + 1];
    let mut needed2 = usize::MAX;
    let st = with_err(ErrOut::Fresh, what, |e| {
        f(exact.as_mut_ptr().cast(), need, &mut needed2, e)
    });
    assert_eq!(
        st,
        tw_status::Ok,
        "{what}: the size it asked for is refused"
    );
    assert_eq!(
        exact[need], 0xAA,
        "{what}: wrote past the size it asked for"
    );
    assert_eq!(needed2, need, "{what}: the size changed between two reads");
    let text = terminated(what, &exact[..need]);
    assert_eq!(
        text.len() + 1,
        need,
        "{what}: the text is not the size it asked for"
    );
    Some(text)
}

/// The NUL-terminated UTF-8 text at the start of `b`.
fn terminated(what: &str, b: &[u8]) -> String {
    let end = b
        .iter()
        .position(|c| *c == 0)
        .unwrap_or_else(|| panic!("{what}: OK without a terminating NUL"));
    std::str::from_utf8(&b[..end])
        .unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"))
        .to_owned()
}

/// Pick a handle: most indexes name one, a few (and any on an empty list) are NULL.
pub fn pick(i: u8, len: usize) -> Option<usize> {
    (i < 250 && len > 0).then(|| usize::from(i) % len)
}

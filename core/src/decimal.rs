//! Plain decimal numbers (`"1.5"`, `"250"`, `".25"`) to the nearest `f64`, as `str::parse`
//! gives them, without `core`'s float parser: its Eisel–Lemire table alone is 10 KB of
//! incompressible data (8.7 KB of the npm package's gzipped browser module), and durations are
//! the only floats the core parses from text.
//!
//! Exact for every input, by two paths: Clinger's fast path (at most 19 significant digits
//! that fit in 53 bits, scaled by an exactly representable power of ten: one correctly
//! rounded operation), and otherwise exact big-integer arithmetic — the value is
//! `digits × 10^exp`, divided out bit by bit to 65 quotient bits plus a sticky remainder, then
//! rounded to nearest, ties to even, subnormals included. Work is bounded whatever the input's
//! length: digits past the 800th significant one only set the sticky bit (767 digits decide
//! any halfway case of an `f64`), and values below 10^-343 or above 10^310 are 0 and infinity.
//! Tested bit for bit against `str::parse` (see the tests below).
//!
//! And the other way, [`Float`]: an `f64` written as `{}` writes it (the shortest digits that
//! read back to it, in plain notation) without `core`'s float formatter (Grisu, Dragon and
//! their big numbers: 8 KB of the browser module): the exact decimal expansion from the same
//! big integers, then at each length the two nearest candidates, checked by reading them back
//! with the parser above. Tested against `{}` on every power of two and its neighbours,
//! 25,000 random bit patterns and 200,000 short decimals (and once, in release, on two
//! million random bit patterns).

/// `text` as the nearest `f64`: ASCII digits with at most one `.` and at least one digit (no
/// sign, no exponent). `None` for anything else: among digits and dots exactly where
/// `str::parse::<f64>` errs; signs, exponents and `inf` (which it would take) never reach here.
pub(crate) fn parse(text: &str) -> Option<f64> {
    let mut digits: Vec<u8> = Vec::new(); // significant digits, at most MAX_DIGITS
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut truncated = false; // a nonzero digit past MAX_DIGITS
                               // The decimal exponent of the last kept digit: value = digits × 10^exp (± the truncation).
    let mut exp: i64 = 0;
    for b in text.bytes() {
        match b {
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                seen_digit = true;
                let d = b - b'0';
                if digits.is_empty() && d == 0 {
                    if seen_dot {
                        exp -= 1; // a leading zero after the point
                    }
                } else if digits.len() < MAX_DIGITS {
                    digits.push(d);
                    if seen_dot {
                        exp -= 1;
                    }
                } else {
                    truncated |= d != 0;
                    if !seen_dot {
                        exp += 1; // an integer digit dropped: the kept ones are worth 10× more
                    }
                }
            }
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    while digits.last() == Some(&0) {
        digits.pop();
        exp += 1;
    }
    Some(from_parts(&digits, exp, truncated))
}

/// `digits × 10^exp` (digits 0..=9, no trailing zero; a little more when `truncated`) as the
/// nearest `f64`.
fn from_parts(digits: &[u8], exp: i64, truncated: bool) -> f64 {
    if digits.is_empty() {
        return 0.0;
    }
    // The decimal exponent of the leading digit bounds the value within a factor of 10.
    let lead = exp + digits.len() as i64 - 1;
    if lead < -343 {
        return 0.0; // < 10^-343: far below half the smallest subnormal (4.9e-324)
    }
    if lead > 309 {
        return f64::INFINITY; // >= 10^310 > f64::MAX
    }
    if !truncated && digits.len() <= 19 {
        let w = digits.iter().fold(0_u64, |w, d| w * 10 + u64::from(*d));
        if w <= 1 << 53 && (-22..=22).contains(&exp) {
            let p = POW10[exp.unsigned_abs() as usize];
            return if exp < 0 { w as f64 / p } else { w as f64 * p };
        }
    }
    exact(digits, exp, truncated)
}

/// Significant digits kept; the rest only set the sticky bit.
const MAX_DIGITS: usize = 800;

/// 10^0 ..= 10^22: every one exactly representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits × 10^exp` (a little more when `truncated`), correctly rounded: big integers.
fn exact(digits: &[u8], exp: i64, truncated: bool) -> f64 {
    // The value as num / den, both integers.
    let mut num = Big::from_digits(digits);
    let mut den = Big::one();
    if exp >= 0 {
        num.mul_pow10(exp as u32);
    } else {
        den.mul_pow10(exp.unsigned_abs() as u32);
    }
    // Scale so that the quotient num·2^s / den has 65 bits, q in [2^64, 2^65): from the bit
    // lengths it has 64 or 65, and one more shift settles it.
    let mut s = 64 + i64::from(den.bits()) - i64::from(num.bits());
    let (mut q, mut rem) = quotient(&num, &den, s);
    if q >> 64 == 0 {
        s += 1;
        (q, rem) = quotient(&num, &den, s);
    }
    round(q, s, rem || truncated)
}

/// `floor(num · 2^s / den)` when it is below 2^65, and whether anything is left over.
fn quotient(num: &Big, den: &Big, s: i64) -> (u128, bool) {
    let mut n = Big(num.0.clone());
    let mut d = Big(den.0.clone());
    if s >= 0 {
        n.shl(s as u32);
    } else {
        d.shl(s.unsigned_abs() as u32);
    }
    n.div_65(d)
}

/// `q · 2^-s` (plus a little when `sticky`), q in [2^64, 2^65), to the nearest `f64`.
fn round(q: u128, s: i64, sticky: bool) -> f64 {
    debug_assert!(q >> 64 == 1);
    // The value is in [2^(64-s), 2^(65-s)): its leading bit's exponent.
    let e_lead = 64 - s;
    // Bits of precision available there: 53 for normal numbers, fewer for subnormals.
    let precision = if e_lead >= -1022 {
        53
    } else {
        53 - (-1022 - e_lead)
    };
    if precision <= 0 {
        // Below half the smallest subnormal, or exactly half of it (ties to even: 0) unless
        // there is more.
        if precision == 0 {
            // The value is in [2^-1075, 2^-1074): above half of 2^-1074 rounds up.
            let above_half = q > 1 << 64 || sticky;
            return if above_half { f64::from_bits(1) } else { 0.0 };
        }
        return 0.0;
    }
    let drop = 65 - precision as u32; // bits of q below the kept ones
    let mut m = (q >> drop) as u64;
    let rest = q & ((1_u128 << drop) - 1);
    let half = 1_u128 << (drop - 1);
    if rest > half || (rest == half && (sticky || m & 1 == 1)) {
        m += 1;
    }
    // The kept bits' weight: m · 2^(e_lead - precision + 1).
    let mut e = e_lead - precision + 1;
    if m == 1 << precision {
        // Rounding carried into a new bit.
        m >>= 1;
        e += 1;
    }
    compose(m, e)
}

/// `m · 2^e` as an `f64`, exactly (m < 2^53, and a subnormal's m already cut to fit), or
/// infinity past the largest.
fn compose(m: u64, e: i64) -> f64 {
    if m == 0 {
        return 0.0;
    }
    let bits = 64 - i64::from(m.leading_zeros()); // 1..=53
    let e_lead = e + bits - 1;
    if e_lead > 1023 {
        return f64::INFINITY;
    }
    if e_lead >= -1022 {
        // Normal: shift m to 53 bits with the leading one implicit.
        let m53 = m << (53 - bits);
        let biased = (e_lead + 1023) as u64;
        f64::from_bits((biased << 52) | (m53 & ((1 << 52) - 1)))
    } else {
        // Subnormal: m · 2^e = (m · 2^(e + 1074)) · 2^-1074, and e + 1074 >= 0 here.
        f64::from_bits(m << (e + 1074))
    }
}

/// An `f64` displayed as `{}` displays it: `1.5`, `100`, `0.000001`, `1e21` as
/// `1000000000000000000000`, `-0`, `inf`, `NaN`. Width, precision and other flags are ignored.
#[derive(Clone, Copy, Debug)]
pub struct Float(pub f64);

impl core::fmt::Display for Float {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_sign_negative() {
            f.write_str("-")?;
        }
        let v = v.abs();
        if v.is_infinite() {
            return f.write_str("inf");
        }
        // Whole numbers below 2^53 (every counter): as the integer (through `write!`, so
        // that flags are ignored here too).
        if v < 9_007_199_254_740_992.0 && v.fract() == 0.0 {
            return write!(f, "{}", v as u64);
        }
        let (digits, exp) = shortest(v);
        let mut text = String::with_capacity(digits.len() + 24);
        write_plain(&mut text, &digits, exp);
        f.write_str(&text)
    }
}

/// `digits × 10^(exp - digits.len() + 1)` (digits as ASCII, `exp` the first one's decimal
/// exponent) in plain notation: `"12.5"`, `"1200"`, `"0.0012"`.
pub(crate) fn write_plain(out: &mut String, digits: &[u8], exp: i32) {
    let n = digits.len() as i32;
    let push = |out: &mut String, digits: &[u8]| {
        for d in digits {
            out.push(char::from(*d));
        }
    };
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..-exp - 1 {
            out.push('0');
        }
        push(out, digits);
    } else if exp >= n - 1 {
        push(out, digits);
        for _ in 0..exp - (n - 1) {
            out.push('0');
        }
    } else {
        let (int, frac) = digits.split_at(exp as usize + 1);
        push(out, int);
        out.push('.');
        push(out, frac);
    }
}

/// The shortest digits (ASCII, no trailing zero) that read back to `v` (finite, > 0), the
/// nearest of them to `v` (the upper one when both are as near, as `{}` does), and the first
/// digit's decimal exponent.
pub(crate) fn shortest(v: f64) -> (Vec<u8>, i32) {
    let (exact, exp) = exact_digits(v);
    // The two `p`-digit neighbours of `v`, and whether each reads back to it.
    let candidates = |p: usize| {
        let lo = exact[..p].to_vec();
        let mut hi = increment(&lo);
        let hi_exp = if hi.len() > p { exp + 1 } else { exp };
        hi.truncate(p); // a carry only adds a zero ("99" + 1 = "100")
        let (lo_ok, hi_ok) = (reads_back(&lo, exp, v), reads_back(&hi, hi_exp, v));
        (lo, lo_ok, hi, hi_exp, hi_ok)
    };
    // Some p-digit decimal reads back to `v` from some length on (a shorter one, padded
    // with a zero, is one of the longer ones): the shortest length by bisection; 17 digits
    // always do, and so do the exact digits when there are fewer.
    let (mut low, mut high) = (1, exact.len().min(17));
    while low < high {
        let mid = (low + high) / 2;
        let (_, lo_ok, _, _, hi_ok) = candidates(mid);
        if lo_ok || hi_ok {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    if low == exact.len() {
        return (exact, exp);
    }
    let (lo, lo_ok, hi, hi_exp, hi_ok) = candidates(low);
    // The nearer of the two when both read back (the rest of the exact digits against a
    // half; the upper one on a tie, as `{}` does).
    if hi_ok && (!lo_ok || exact[low] >= b'5') {
        (strip(&hi), hi_exp)
    } else {
        (strip(&lo), exp)
    }
}

/// Whether the decimal `digits` (ASCII), its first digit at decimal exponent `first_exp`,
/// reads back to `v`.
pub(crate) fn reads_back(digits: &[u8], first_exp: i32, v: f64) -> bool {
    let end = digits.iter().rposition(|d| *d != b'0').map_or(0, |i| i + 1);
    let values: Vec<u8> = digits[..end].iter().map(|d| d - b'0').collect();
    let last_exp = i64::from(first_exp) - end as i64 + 1;
    from_parts(&values, last_exp, false) == v
}

fn strip(digits: &[u8]) -> Vec<u8> {
    let end = digits.iter().rposition(|d| *d != b'0').map_or(1, |i| i + 1);
    digits[..end].to_vec()
}

/// ASCII digits plus one in the last place (`"129"` → `"130"`, `"99"` → `"100"`).
fn increment(digits: &[u8]) -> Vec<u8> {
    let mut out = digits.to_vec();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return out;
        }
    }
    out.insert(0, b'1');
    out
}

/// Every digit of finite `v > 0` (ASCII, no trailing zero) and the first one's decimal
/// exponent: `v = m · 2^e` is `m · 2^e` when `e >= 0`, else `m · 5^-e / 10^-e`.
pub(crate) fn exact_digits(v: f64) -> (Vec<u8>, i32) {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let mut n = Big(vec![m as u32, (m >> 32) as u32]);
    let mut scale = 0_i32; // value = n / 10^scale
    if e >= 0 {
        n.shl(e as u32);
    } else {
        let mut k = -e;
        scale = k;
        while k >= 13 {
            n.mul_add(1_220_703_125, 0); // 5^13
            k -= 13;
        }
        if k > 0 {
            n.mul_add(5_u32.pow(k as u32), 0);
        }
    }
    let digits = n.into_decimal();
    let exp = digits.len() as i32 - 1 - scale;
    (strip(&digits), exp)
}

/// A non-negative big integer, little-endian 32-bit limbs.
struct Big(Vec<u32>);

impl Big {
    fn one() -> Big {
        Big(vec![1])
    }

    fn from_digits(digits: &[u8]) -> Big {
        let mut b = Big(vec![0]);
        for chunk in digits.chunks(9) {
            let mut v = 0_u32;
            let mut scale = 1_u32;
            for d in chunk {
                v = v * 10 + u32::from(*d);
                scale *= 10;
            }
            b.mul_add(scale, v);
        }
        b
    }

    fn mul_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut n: u32) {
        while n >= 9 {
            self.mul_add(1_000_000_000, 0);
            n -= 9;
        }
        if n > 0 {
            self.mul_add(10_u32.pow(n), 0);
        }
    }

    fn bits(&self) -> u32 {
        let top = self.0.iter().rposition(|l| *l != 0).unwrap_or(0);
        top as u32 * 32 + (32 - self.0[top].leading_zeros())
    }

    fn shl(&mut self, n: u32) {
        let (limbs, bits) = ((n / 32) as usize, n % 32);
        if bits > 0 {
            let mut carry = 0_u32;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if limbs > 0 {
            let mut shifted = vec![0; limbs + self.0.len()];
            shifted[limbs..].copy_from_slice(&self.0);
            self.0 = shifted;
        }
    }

    fn cmp(&self, other: &Big) -> core::cmp::Ordering {
        let len = self.0.len().max(other.0.len());
        for i in (0..len).rev() {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = other.0.get(i).copied().unwrap_or(0);
            if a != b {
                return a.cmp(&b);
            }
        }
        core::cmp::Ordering::Equal
    }

    /// `self -= other`, for `other <= self`.
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0_i64;
        for i in 0..self.0.len() {
            let v = i64::from(self.0[i]) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            self.0[i] = (v + (borrow << 32)) as u32;
        }
        debug_assert_eq!(borrow, 0);
    }

    /// `self >>= 1`.
    fn shr1(&mut self) {
        let mut carry = 0_u32;
        for limb in self.0.iter_mut().rev() {
            let v = (*limb >> 1) | carry;
            carry = *limb << 31;
            *limb = v;
        }
    }

    /// The decimal digits (ASCII, no leading zero; `"0"` for zero).
    fn into_decimal(mut self) -> Vec<u8> {
        let mut chunks = Vec::new(); // base 10^9, least significant first
        while !self.is_zero() {
            let mut rem = 0_u64;
            for limb in self.0.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            chunks.push(rem as u32);
            while self.0.len() > 1 && self.0.last() == Some(&0) {
                self.0.pop();
            }
        }
        let mut out = Vec::with_capacity(chunks.len() * 9);
        for (i, chunk) in chunks.iter().rev().enumerate() {
            let mut buf = [b'0'; 9];
            let mut c = *chunk;
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (c % 10) as u8;
                c /= 10;
            }
            let start = if i == 0 {
                buf.iter().position(|d| *d != b'0').unwrap_or(8)
            } else {
                0
            };
            out.extend_from_slice(&buf[start..]);
        }
        if out.is_empty() {
            out.push(b'0');
        }
        out
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|l| *l == 0)
    }

    /// `self / den` when it is below 2^65 (by shift and subtract: `den · 2^64`, halved at each
    /// quotient bit), and whether a remainder is left. Consumes `self` as the remainder.
    fn div_65(mut self, mut den: Big) -> (u128, bool) {
        den.shl(64);
        let mut q = 0_u128;
        for i in (0..=64).rev() {
            if self.cmp(&den) != core::cmp::Ordering::Less {
                self.sub(&den);
                q |= 1 << i;
            }
            den.shr1();
        }
        (q, !self.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::{exact_digits, parse, Float};

    /// xorshift64*: deterministic inputs.
    struct Rand(u64);
    impl Rand {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// `min` to `min + span - 1` random digits.
        fn some_digits(&mut self, min: u64, span: u64) -> String {
            let n = min + self.below(span);
            self.digits(n as usize)
        }
        fn digits(&mut self, n: usize) -> String {
            (0..n)
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    #[track_caller]
    fn same(text: &str) {
        let want = text.parse::<f64>().ok();
        let got = parse(text);
        assert_eq!(
            got.map(f64::to_bits),
            want.map(f64::to_bits),
            "{text:?}: got {got:?}, std {want:?}"
        );
    }

    #[test]
    fn accepts_and_refuses_what_str_parse_does() {
        // Everything a duration's number can be (digits and dots): as `str::parse`.
        for t in [
            "0", "00", "0.", ".0", "5", "5.", ".5", "1.5", "007.250", "", ".", "..", "1..5",
            "1.2.3", "..5", "5..",
        ] {
            same(t);
        }
        // Signs, exponents and names never reach it (the duration parser splits on the first
        // character that is not a digit or a dot); they are refused rather than parsed.
        for t in ["-1", "+1", "1e3", "inf", "NaN", " 1", "1 ", "1_000", "١"] {
            assert_eq!(parse(t), None, "{t:?}");
        }
    }

    #[test]
    fn equals_str_parse_on_short_decimals() {
        let mut r = Rand(0x9E37_79B9_7F4A_7C15);
        for _ in 0..100_000 {
            let int = r.some_digits(0, 12);
            let frac = r.some_digits(0, 14);
            let text = match r.below(4) {
                0 => int,
                1 => format!("{int}.{frac}"),
                2 => format!(".{frac}"),
                _ => format!("{int}."),
            };
            same(&text);
        }
    }

    #[test]
    fn equals_str_parse_on_long_and_extreme_decimals() {
        let mut r = Rand(0xD1B5_4A32_D192_ED03);
        for _ in 0..20_000 {
            let text = match r.below(6) {
                // 17 to 40 significant digits: past the fast path.
                0 => format!("{}.{}", r.some_digits(1, 20), r.some_digits(0, 25)),
                // Tiny: the subnormal range and below it.
                1 => format!(
                    "0.{}{}",
                    "0".repeat(290 + r.below(60) as usize),
                    r.some_digits(1, 30)
                ),
                // Huge: around f64::MAX.
                2 => format!("{}{}", 1 + r.below(9), r.some_digits(300, 15)),
                // Past the 800 kept digits, in the integer part and in the fraction.
                3 => format!("{}.{}", r.some_digits(1, 5), r.some_digits(780, 60)),
                4 => format!("{}{}", 1 + r.below(9), r.some_digits(790, 20)),
                // Many leading and trailing zeros.
                _ => format!(
                    "{}{}.{}{}",
                    "0".repeat(r.below(400) as usize),
                    r.some_digits(0, 6),
                    r.some_digits(0, 6),
                    "0".repeat(r.below(900) as usize)
                ),
            };
            same(&text);
        }
    }

    #[test]
    fn rounds_halfway_cases_to_even_as_str_parse_does() {
        let mut r = Rand(0xA076_1D64_78BD_642F);
        for _ in 0..20_000 {
            // An odd 54-bit m: m·2^k lies halfway between two neighbouring f64s when m has 54 bits.
            let m = u128::from((r.next() >> 10) | (1 << 53) | 1);
            let k = r.below(70) as u32;
            let mid = m << k;
            same(&mid.to_string());
            same(&(mid - 1).to_string());
            same(&(mid + 1).to_string());
            same(&format!("{mid}.000"));
            same(&format!("{mid}.{}1", "0".repeat(r.below(900) as usize)));
            // (m / 2^n) exactly, in decimal: m·5^n with the point n places from the right.
            let n = 1 + r.below(10) as u32;
            let digits = (m * 5_u128.pow(n)).to_string();
            let (int, frac) = digits.split_at(digits.len() - n as usize);
            same(&format!("{int}.{frac}"));
            same(&format!(
                "{int}.{frac}{}1",
                "0".repeat(r.below(50) as usize)
            ));
        }
        for t in [
            "9007199254740993",
            "9007199254740995",
            "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791.9999999999999999999999999999999999999999999999999999999999999999999999",
            "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792",
        ] {
            same(t);
        }
        // The smallest subnormal, half of it (a tie: 0), and just above half.
        let half = format!("0.{}", "0".repeat(323));
        same(&format!("{half}4940656458412465441765687928682213723651"));
        same(&format!("{half}2470328229206232720882538009"));
        same(&format!(
            "{half}24703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125"
        ));
        same(&format!(
            "{half}24703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125000000001"
        ));
    }

    #[track_caller]
    fn written(v: f64) {
        assert_eq!(
            Float(v).to_string(),
            format!("{v}"),
            "bits {:#x}",
            v.to_bits()
        );
    }

    #[test]
    fn floats_are_written_as_display_writes_them() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            0.3,
            2.5,
            1e21,
            1e22,
            1e23,
            123_456_789.125,
            9_007_199_254_740_992.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::EPSILON,
            5e-324,
            1.7976931348623157e308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            written(v);
        }
        // Powers of two (an asymmetric rounding interval) and their neighbours.
        for e in -1074..=1023 {
            let bits: u64 = if e >= -1022 {
                ((e + 1023) as u64) << 52
            } else {
                1 << (e + 1074)
            };
            for v in [bits, bits + 1, bits - 1].map(f64::from_bits) {
                written(v);
            }
        }
        let mut r = Rand(0x9e37_79b9_7f4a_7c15);
        for i in 0..200_000 {
            // Any bit pattern (fewer: far from 1 the digits are long), and short decimals
            // (the usual config values).
            if i % 8 == 0 {
                written(f64::from_bits(r.next()));
            }
            let short = format!("{}.{}", r.below(100_000), r.some_digits(1, 6));
            written(short.parse().unwrap());
        }
    }

    #[test]
    fn exact_digits_are_every_digit_of_the_value() {
        let mut r = Rand(7);
        for _ in 0..2_000 {
            let v = f64::from_bits(r.next() >> 1); // positive
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            let (digits, exp) = exact_digits(v);
            let full = format!("{v:.1074e}");
            let (mantissa, e) = full.split_once('e').unwrap();
            let mantissa: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let mantissa = mantissa.trim_end_matches('0');
            assert_eq!(std::str::from_utf8(&digits).unwrap(), mantissa);
            assert_eq!(exp, e.parse::<i32>().unwrap());
        }
    }
}

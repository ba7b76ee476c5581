//! Configs as a JSON-like tree ([`Node`]): every binding's config becomes one (JSON text
//! parsed by `serde_json`, a JS object read by the npm package's glue), which the config types
//! then read themselves ([`crate::read`]), naming the field path of the first problem.
//!
//! This module also holds a serde deserializer over the tree, for any `Deserialize` type (the
//! config types' derived impls, a host's own types; `config::from_json_str` and
//! `config::from_deserializer` take this route). It mirrors `serde_json::Value`'s
//! deserializer (same visitor calls, and serde_json's error texts: serde's own, with
//! serde_json's wording of an unexpected null or float) and names paths as
//! `serde_path_to_error` does (`a.b[2].c`), with one deliberate difference: a struct written
//! as an array (`"timeout": ["1s", "5s"]`, which serde_json maps onto the fields in
//! declaration order) is refused — `invalid type: sequence, expected struct TimeoutConfig` —
//! as no one means that. `tests` below replays every vector config and thousands of
//! mutations through [`crate::read`], this deserializer and `serde_json::Value` +
//! `serde_path_to_error`.

use core::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::error::ConfigError;

/// A JSON-like value, as `serde_json::Value` holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null` (also `undefined`, `NaN` and the infinities).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer >= 0.
    PosInt(u64),
    /// An integer < 0.
    NegInt(i64),
    /// Any other finite number.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Seq(Vec<Node>),
    /// An object (keys unique): sorted by key when read from JSON or JS or built by
    /// [`Node::map`]; a tree written by [`crate::ToTree`] keeps its fields' declaration order
    /// (as `Serialize` writes them), and is only for output.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// An integer as serde_json's `Number::from(i64)`.
    pub fn int(n: i64) -> Node {
        u64::try_from(n).map_or(Node::NegInt(n), Node::PosInt)
    }

    /// An object from its entries in any order (keys unique), sorted as a `BTreeMap`.
    pub fn map(entries: Vec<(String, Node)>) -> Node {
        Node::Map(sorted_by_key(entries))
    }

    pub(crate) fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Null => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(*b),
            Node::PosInt(n) => Unexpected::Unsigned(*n),
            Node::NegInt(n) => Unexpected::Signed(*n),
            Node::Float(f) => Unexpected::Float(*f),
            Node::Str(s) => Unexpected::Str(s),
            Node::Seq(_) => Unexpected::Seq,
            Node::Map(_) => Unexpected::Map,
        }
    }
}

/// `entries` sorted by key: a merge sort, a few hundred bytes of wasm where the standard
/// library's sort for this element type is kilobytes (the npm package's browser module).
fn sorted_by_key(mut entries: Vec<(String, Node)>) -> Vec<(String, Node)> {
    if entries.len() < 2 {
        return entries;
    }
    let right = sorted_by_key(entries.split_off(entries.len() / 2));
    let left = sorted_by_key(entries);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter(), right.into_iter());
    let (mut l, mut r) = (left.next(), right.next());
    loop {
        match (l.take(), r.take()) {
            (Some(a), Some(b)) if a.0 <= b.0 => {
                out.push(a);
                (l, r) = (left.next(), Some(b));
            }
            (Some(a), Some(b)) => {
                out.push(b);
                (l, r) = (Some(a), right.next());
            }
            (Some(a), None) => {
                out.push(a);
                out.extend(left);
                return out;
            }
            (None, Some(b)) => {
                out.push(b);
                out.extend(right);
                return out;
            }
            (None, None) => return out,
        }
    }
}

impl From<serde_json::Value> for Node {
    /// The same value: integers as serde_json classes them, objects in key order.
    fn from(value: serde_json::Value) -> Node {
        use serde_json::Value;
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Node::PosInt(u),
                (None, Some(i)) => Node::NegInt(i),
                // Finite unless serde_json's arbitrary_precision is on somewhere in the build
                // (then "1e400" is infinite): a config refuses a non-finite number by path.
                _ => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Node::Str(s),
            Value::Array(items) => Node::Seq(items.into_iter().map(Node::from).collect()),
            // Sorted here too: serde_json's map is only sorted without preserve_order.
            Value::Object(m) => Node::map(m.into_iter().map(|(k, v)| (k, Node::from(v))).collect()),
        }
    }
}

impl From<Node> for serde_json::Value {
    /// The same value (a float that JSON cannot hold, none a tree from JSON has, is `null`).
    fn from(node: Node) -> serde_json::Value {
        use serde_json::Value;
        match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::PosInt(n) => Value::from(n),
            Node::NegInt(n) => Value::from(n),
            Node::Float(f) => Value::from(f),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        }
    }
}

/// A tree from any serde data format (`config::from_deserializer`): as `serde_json::Value`
/// reads it, except that a non-finite float is refused rather than turned into `null` (which a
/// config would read as "not set").
impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::PosInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        if v.is_finite() {
            Ok(Node::Float(v))
        } else {
            Err(E::custom(format_args!(
                "a config holds JSON numbers, and {v} is not one"
            )))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        // A later duplicate key replaces an earlier one, as in a serde_json map.
        let mut entries: std::collections::BTreeMap<String, Node> = Default::default();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            entries.insert(k, v);
        }
        Ok(Node::Map(entries.into_iter().collect()))
    }
}

/// Deserialize `T` from `node`, naming the field path of the first problem (as the core's
/// `config::from_json_value` does for the same JSON).
pub fn deserialize<T: DeserializeOwned>(node: Node) -> Result<T, ConfigError> {
    T::deserialize(De {
        node,
        at: &At::Root,
    })
    .map_err(Error::into_config_error)
}

/// Where a value sits: a chain of segments up to the root.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    /// The document.
    Root,
    /// A map key, struct field or enum variant.
    Key(&'a At<'a>, &'a str),
    /// An array index.
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// The path as `serde_path_to_error` writes it: `a.b[2].c`.
    #[cold]
    #[inline(never)]
    pub(crate) fn path(&self) -> String {
        let mut segments = Vec::new();
        let mut at = self;
        loop {
            match at {
                At::Root => break,
                At::Key(parent, _) | At::Index(parent, _) => {
                    segments.push(at);
                    at = parent;
                }
            }
        }
        let mut path = String::new();
        for (i, segment) in segments.iter().rev().enumerate() {
            match segment {
                At::Key(_, key) => {
                    if i > 0 {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                At::Index(_, index) => {
                    path.push('[');
                    push_decimal(&mut path, *index);
                    path.push(']');
                }
                At::Root => {}
            }
        }
        path
    }
}

fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0_u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// An error's text plus the path where it first surfaced; one pointer wide, so results stay
/// small. The texts are serde's defaults, which serde_json's errors keep but for
/// `invalid_type`/`invalid_value` (below).
#[derive(Debug)]
pub struct Error(Box<(String, Option<String>)>);

impl Error {
    /// Pin the error to `at` unless a deeper value already did.
    #[cold]
    #[inline(never)]
    pub(crate) fn at(mut self, at: &At<'_>) -> Error {
        if self.0 .1.is_none() {
            self.0 .1 = Some(at.path());
        }
        self
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn into_config_error(self) -> ConfigError {
        let (message, path) = *self.0;
        let path = path.unwrap_or_default();
        // serde_path_to_error writes the root as "." and the core reads that as the root.
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0 .0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error(Box::new((msg.to_string(), None)))
    }

    #[cold]
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Error {
        de::Error::custom(format_args!(
            "invalid type: {}, expected {}",
            JsonUnexpected(unexp),
            exp,
        ))
    }

    #[cold]
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Error {
        de::Error::custom(format_args!(
            "invalid value: {}, expected {}",
            JsonUnexpected(unexp),
            exp,
        ))
    }
}

/// serde_json's own `invalid_type`/`invalid_value` wording: `null` for unit, a float as its
/// float formatter writes it (without linking that formatter's tables: about 17 KB of wasm
/// for a number in an error message), every other text serde's own ([`UnexpectedText`]).
struct JsonUnexpected<'a>(Unexpected<'a>);

impl fmt::Display for JsonUnexpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Float(v) => write!(f, "floating point `{}`", json_float(v)),
            other => fmt::Display::fmt(&UnexpectedText(other), f),
        }
    }
}

/// What a value was, in an "invalid type" text (serde's, re-exported for the bindings).
pub use serde::de::Unexpected;

/// serde's `Unexpected` as serde's `Display` writes it (`boolean `true``, `string "x"`,
/// `floating point `1.0``), written here: serde's string arm quotes with `{:?}` and so links
/// its Unicode tables (see `error::Quoted`), and its float arm `core`'s float formatter.
#[derive(Clone, Copy, Debug)]
pub struct UnexpectedText<'a>(pub Unexpected<'a>);

impl fmt::Display for UnexpectedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Unit => f.write_str("unit value"),
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Float(v) => {
                // With a decimal point (`1.0`), where `{}` writes none and the number is finite.
                let text = crate::decimal::Float(v).to_string();
                let point = if v.is_finite() && !text.contains('.') {
                    ".0"
                } else {
                    ""
                };
                write!(f, "floating point `{text}{point}`")
            }
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {}", crate::error::Quoted(s)),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// A finite `f64` as serde_json writes it (its `zmij` formatter): the shortest digits that
/// read back to the same number, in plain notation when the decimal exponent is within
/// -5..=15 (`"1.5"`, `"0.00001"`, `"1000000000000000.0"`), else as `"1.5e+16"` / `"1e-7"`.
/// The host tests compare it with serde_json's own on a million numbers.
#[cold]
#[inline(never)]
fn json_float(v: f64) -> String {
    use crate::decimal::{exact_digits, shortest, Float};
    if !v.is_finite() {
        // Not reachable from a Node (NaN and the infinities are null); zmij writes these so.
        return Float(v).to_string();
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let v = v.abs();
    let (mut digits, exp) = if v == 0.0 {
        (vec![b'0'], 0)
    } else {
        shortest(v)
    };
    // Both write the shortest digits that read back, but when the number lies exactly
    // halfway between the two closest such candidates (both reading back), Rust takes the
    // upper one and zmij the even one: the exact expansion then has one more digit, a 5.
    if digits.last().is_some_and(|d| d % 2 == 1) {
        let (exact, _) = exact_digits(v);
        let n = digits.len();
        if exact.len() == n + 1 && exact[n] == b'5' && exact[..n - 1] == digits[..n - 1] {
            let mut lower = digits.clone();
            lower[n - 1] -= 1;
            // At a power of two the interval is lopsided: the lower one may not read back.
            if exact[n - 1] == lower[n - 1] && crate::decimal::reads_back(&lower, exp, v) {
                digits = lower;
            }
        }
    }
    let digits = digits.as_slice();
    let n = digits.len() as i32;
    if (-5..=15).contains(&exp) {
        crate::decimal::write_plain(&mut out, digits, exp);
        if n - 1 <= exp {
            out.push_str(".0");
        }
    } else {
        out.push(char::from(digits[0]));
        if n > 1 {
            out.push('.');
            for d in &digits[1..] {
                out.push(char::from(*d));
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        push_decimal(&mut out, exp.unsigned_abs() as usize);
    }
    out
}

/// A node at a place in the document.
struct De<'a> {
    node: Node,
    at: &'a At<'a>,
}

impl De<'_> {
    #[cold]
    fn invalid_type(&self, exp: &dyn de::Expected) -> Error {
        de::Error::invalid_type(self.node.unexpected(), exp)
    }
}

/// An array's elements for a visitor; then every element must have been taken.
fn visit_seq<'de, V: Visitor<'de>>(
    items: Vec<Node>,
    at: &At<'_>,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = items.len();
    let mut access = Seq {
        iter: items.into_iter(),
        at,
        index: 0,
    };
    let value = visitor.visit_seq(&mut access)?;
    if access.iter.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

/// An object's entries for a visitor; then every entry must have been taken.
fn visit_map<'de, V: Visitor<'de>>(
    entries: Vec<(String, Node)>,
    at: &At<'_>,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = entries.len();
    let mut access = Map {
        iter: entries.into_iter(),
        pending: None,
        at,
    };
    let value = visitor.visit_map(&mut access)?;
    if access.iter.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

impl<'de> De<'_> {
    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(b),
            Node::PosInt(n) => visitor.visit_u64(n),
            Node::NegInt(n) => visitor.visit_i64(n),
            Node::Float(f) => visitor.visit_f64(f),
            Node::Str(s) => visitor.visit_string(s),
            Node::Seq(items) => visit_seq(items, self.at, visitor),
            Node::Map(entries) => visit_map(entries, self.at, visitor),
        }
    }

    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::PosInt(_) | Node::NegInt(_) | Node::Float(_) => self.any(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(s) => visitor.visit_string(s),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Seq(items) => visit_seq(items, self.at, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }
}

/// Each `deserialize_*` pins an error that surfaces through it to this node's path.
macro_rules! pinned {
    ($($method:ident => $how:ident,)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                let at = self.at;
                self.$how(visitor).map_err(|e| e.at(at))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = Error;

    pinned! {
        deserialize_any => any,
        deserialize_i8 => number,
        deserialize_i16 => number,
        deserialize_i32 => number,
        deserialize_i64 => number,
        deserialize_i128 => number,
        deserialize_u8 => number,
        deserialize_u16 => number,
        deserialize_u32 => number,
        deserialize_u64 => number,
        deserialize_u128 => number,
        deserialize_f32 => number,
        deserialize_f64 => number,
        deserialize_char => string,
        deserialize_str => string,
        deserialize_string => string,
        deserialize_identifier => string,
        deserialize_seq => seq,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        match self.node {
            Node::Bool(b) => visitor.visit_bool(b),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        match self.node {
            Node::Str(s) => visitor.visit_string(s),
            Node::Seq(items) => visit_seq(items, at, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        match self.node {
            Node::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let at = self.at;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(at))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        match self.node {
            Node::Map(entries) => visit_map(entries, at, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Only as a map: a struct written as an array is refused (see the module's doc), so no
        // config type's derived `visit_seq` is reachable.
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let at = self.at;
        let access = match self.node {
            Node::Str(variant) => Enum {
                variant,
                value: None,
                at,
            },
            Node::Map(mut entries) if entries.len() == 1 => {
                let (variant, value) = entries.swap_remove(0);
                Enum {
                    variant,
                    value: Some(value),
                    at,
                }
            }
            Node::Map(_) => {
                return Err(<Error as de::Error>::invalid_value(
                    Unexpected::Map,
                    &"map with a single key",
                )
                .at(at))
            }
            _ => return Err(self.invalid_type(&"string or map").at(at)),
        };
        visitor.visit_enum(access).map_err(|e| e.at(at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at;
        drop(self.node);
        visitor.visit_unit().map_err(|e: Error| e.at(at))
    }
}

struct Seq<'a> {
    iter: std::vec::IntoIter<Node>,
    at: &'a At<'a>,
    index: usize,
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.iter.next() else {
            return Ok(None);
        };
        let at = At::Index(self.at, self.index);
        self.index += 1;
        seed.deserialize(De { node, at: &at })
            .map(Some)
            .map_err(|e| e.at(&at))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Map<'a> {
    iter: std::vec::IntoIter<(String, Node)>,
    pending: Option<(String, Node)>,
    at: &'a At<'a>,
}

impl<'de> MapAccess<'de> for Map<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, node)) = self.iter.next() else {
            return Ok(None);
        };
        // A refused key (an unknown field) is named by its own path, as serde_path_to_error does.
        let key_value = seed
            .deserialize(StrDeserializer::<Error>::new(&key))
            .map_err(|e| e.at(&At::Key(self.at, &key)))?;
        self.pending = Some((key, node));
        Ok(Some(key_value))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, node)) = self.pending.take() else {
            return Err(de::Error::custom("value is missing"));
        };
        let at = At::Key(self.at, &key);
        seed.deserialize(De { node, at: &at })
            .map_err(|e| e.at(&at))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Enum<'a> {
    variant: String,
    value: Option<Node>,
    at: &'a At<'a>,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = Variant<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'a>), Error> {
        let tag = seed.deserialize(StrDeserializer::<Error>::new(&self.variant))?;
        Ok((
            tag,
            Variant {
                variant: self.variant,
                value: self.value,
                at: self.at,
            },
        ))
    }
}

/// A variant's content; its path is the enum's plus the variant name.
struct Variant<'a> {
    variant: String,
    value: Option<Node>,
    at: &'a At<'a>,
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        let at = At::Key(self.at, &self.variant);
        match self.value {
            Some(node) => <() as de::Deserialize>::deserialize(De { node, at: &at }),
            None => Ok(()),
        }
        .map_err(|e| e.at(&at))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let at = At::Key(self.at, &self.variant);
        match self.value {
            Some(node) => seed.deserialize(De { node, at: &at }),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
        .map_err(|e| e.at(&at))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let at = At::Key(self.at, &self.variant);
        match self.value {
            Some(Node::Seq(items)) if items.is_empty() => visitor.visit_unit(),
            Some(Node::Seq(items)) => visit_seq(items, &at, visitor),
            Some(other) => Err(de::Error::invalid_type(
                other.unexpected(),
                &"tuple variant",
            )),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
        .map_err(|e| e.at(&at))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let at = At::Key(self.at, &self.variant);
        match self.value {
            Some(Node::Map(entries)) => visit_map(entries, &at, visitor),
            Some(other) => Err(de::Error::invalid_type(
                other.unexpected(),
                &"struct variant",
            )),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
        .map_err(|e| e.at(&at))
    }
}

#[cfg(test)]
mod tests {
    //! This route against `serde_json::Value` + `serde_path_to_error` (the core's route before
    //! this one, kept here as the oracle): every config in the conformance vectors, and
    //! thousands of mutations of each, must give the same value or the same `path: reason` —
    //! except where a struct is written as an array, which only this route refuses.

    use super::*;
    use crate::bulkhead::BulkheadConfig;
    use crate::deadline::TimeoutConfig;
    use crate::health::{CheckConfig, HealthConfig};
    use crate::pipeline::{PipelineConfig, PolicyFile};
    use crate::read::FromTree;
    use crate::{
        BreakerConfig, BreakerSnapshot, CircuitBreaker, Instant, KeyedRateLimitConfig, Outcome,
        RateLimitConfig, RetryConfig,
    };
    use serde_json::{json, Value};

    /// The route this one replaced, as `config::from_deserializer` wrote it.
    fn oracle<T: DeserializeOwned>(v: &Value) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::new(path, e.into_inner().to_string())
        })
    }

    /// The three routes: `crate::read`'s must match this module's exactly, and this module's
    /// must match the oracle but where it refuses a struct written as an array.
    fn same<T: DeserializeOwned + FromTree + PartialEq + fmt::Debug>(v: &Value) -> bool {
        let ours = deserialize::<T>(Node::from(v.clone()));
        let read = T::from_tree(Node::from(v.clone()));
        assert_eq!(read, ours, "crate::read for {v}");
        let theirs = oracle::<T>(v);
        let refused_array = ours.as_ref().err().is_some_and(|e| {
            e.to_string()
                .contains(": invalid type: sequence, expected struct ")
                || e.to_string()
                    .starts_with("invalid type: sequence, expected struct ")
        });
        if !refused_array {
            assert_eq!(ours, theirs, "for {v}");
        }
        ours.is_ok()
    }

    /// Both routes for the config type of `target`; whether it was accepted.
    fn check(target: &str, v: &Value) -> bool {
        match target {
            "policyFile" => same::<PolicyFile>(v),
            // A fleet's config is a pipeline's; a shared limiter's a subset of one.
            "pipeline" | "fleet" | "sharedRateLimit" => same::<PipelineConfig>(v),
            "circuitBreaker" => same::<BreakerConfig>(v),
            "retry" => same::<RetryConfig>(v),
            "timeout" => same::<TimeoutConfig>(v),
            "bulkhead" => same::<BulkheadConfig>(v),
            "rateLimit" => same::<RateLimitConfig>(v),
            "keyedRateLimit" => same::<KeyedRateLimitConfig>(v),
            "health" => same::<HealthConfig>(v),
            "check" => same::<CheckConfig>(v),
            "snapshot" => same::<BreakerSnapshot>(v),
            other => panic!("no config type for {other}"),
        }
    }

    /// Every value of `v` with `path` (object keys, array indices) replaced by `f`'s result
    /// (None: removed).
    fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(prefix.clone());
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    prefix.push(json!(k));
                    paths(x, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    prefix.push(json!(i));
                    paths(x, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    fn replace(v: &Value, path: &[Value], f: &dyn Fn(&Value) -> Option<Value>) -> Value {
        let Some((first, rest)) = path.split_first() else {
            return f(v).unwrap_or(Value::Null);
        };
        let mut v = v.clone();
        match (&mut v, first) {
            (Value::Object(m), Value::String(k)) => {
                if rest.is_empty() {
                    match f(&m[k]) {
                        Some(x) => m[k] = x,
                        None => drop(m.remove(k)),
                    }
                } else {
                    m[k] = replace(&m[k], rest, f);
                }
            }
            (Value::Array(items), Value::Number(i)) => {
                let i = i.as_u64().unwrap() as usize;
                if rest.is_empty() {
                    match f(&items[i]) {
                        Some(x) => items[i] = x,
                        None => drop(items.remove(i)),
                    }
                } else {
                    items[i] = replace(&items[i], rest, f);
                }
            }
            _ => unreachable!(),
        }
        v
    }

    fn mutations(target: &str, config: &Value) -> (usize, usize) {
        let replacements = [
            json!(null),
            json!(true),
            json!("x"),
            json!("250ms"),
            json!("5/s"),
            json!("full"),
            json!(1.5),
            json!(-1),
            json!(0),
            json!(3),
            json!(1e300),
            json!(1e20),
            json!(0.1),
            json!(-0.5),
            json!(1e-7),
            json!(9_007_199_254_740_994_u64),
            json!([]),
            json!([1]),
            json!(["1s"]),
            json!({}),
            json!({"bogus": 1}),
            json!({"limit": 2, "period": "1s"}),
            json!({"base": "1s", "max": "10s"}),
            json!({"full": null}),
            json!({"full": 1}),
        ];
        let mut all = Vec::new();
        paths(config, &mut Vec::new(), &mut all);
        let (mut cases, mut accepted) = (0, 0);
        let mut run = |v: &Value| {
            cases += 1;
            accepted += usize::from(check(target, v));
        };
        run(config);
        for path in &all {
            for r in &replacements {
                run(&replace(config, path, &|_| Some(r.clone())));
            }
            if !path.is_empty() {
                run(&replace(config, path, &|_| None));
            }
            run(&replace(config, path, &|x| {
                Some(match x {
                    Value::Object(m) => {
                        let mut m = m.clone();
                        m.insert("zzUnknown".into(), json!(1));
                        m.insert("AaUnknown".into(), json!(2));
                        Value::Object(m)
                    }
                    other => other.clone(),
                })
            }));
        }
        (cases, accepted)
    }

    #[test]
    fn every_vector_config_and_its_mutations_parse_as_the_core_parses_them() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let (mut cases, mut accepted, mut configs) = (0, 0, 0);
        for file in &files {
            let vector: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let kind = vector["kind"].as_str().unwrap();
            let target = if kind == "config" {
                vector["target"].as_str().unwrap()
            } else {
                kind
            };
            if let Some(config) = vector.get("config") {
                let (c, a) = mutations(target, config);
                cases += c;
                accepted += a;
                configs += 1;
            }
        }
        assert!(configs >= 120, "only {configs} vector configs found");
        // Both outcomes must have been exercised, many times.
        assert!(
            accepted > 1000 && cases - accepted > 10_000,
            "{accepted}/{cases}"
        );
    }

    #[test]
    fn breaker_snapshots_and_odd_shapes_parse_as_the_core_parses_them() {
        let config: BreakerConfig = serde_json::from_value(json!({
            "trip": {"failureRate": 0.5, "minimumCalls": 2, "window": {"calls": 4}},
            "openDuration": {"base": "1s", "max": "1m"}
        }))
        .unwrap();
        let mut b = CircuitBreaker::new(config).unwrap();
        for i in 0..3 {
            let now = Instant::from_millis_f64(f64::from(i));
            if let crate::Admission::Admitted(p) = b.try_acquire(now) {
                b.record(p, Outcome::Failure, now);
            }
        }
        let snapshot = serde_json::to_value(b.snapshot()).unwrap();
        let (cases, accepted) = mutations("snapshot", &snapshot);
        assert!(accepted >= 1 && cases > accepted, "{accepted}/{cases}");

        for (target, v) in [
            ("pipeline", json!(null)),
            ("pipeline", json!({".": 1})),
            ("pipeline", json!({"": 1})),
            ("pipeline", json!({"zeta": 1, "Alpha": 2, "é": 3})),
            ("pipeline", json!({"timeout": ["1s"]})),
            ("pipeline", json!({"timeout": ["1s", "2s", "3s"]})),
            (
                "pipeline",
                json!({"retry": {"backoff": {"jitter": {"full": null}}}}),
            ),
            (
                "pipeline",
                json!({"retry": {"backoff": {"jitter": {"full": 1}}}}),
            ),
            (
                "pipeline",
                json!({"retry": {"backoff": {"jitter": {"full": null, "none": null}}}}),
            ),
            ("pipeline", json!({"retry": {"backoff": {"jitter": {}}}})),
            ("pipeline", json!({"retry": {"backoff": {"jitter": 1}}})),
            (
                "pipeline",
                json!({"circuitBreaker": {"trip": [{"consecutiveFailures": 3}]}}),
            ),
            (
                "pipeline",
                json!({"rateLimit": [{"rate": "5/s"}, {"rate": "x"}]}),
            ),
            ("pipeline", json!({"seed": 18_446_744_073_709_551_615_u64})),
            ("pipeline", json!({"seed": -1})),
            ("pipeline", json!({"fallback": {"on": ["timeout", 3]}})),
            ("pipeline", json!({"order": ["retry", "nope"]})),
            (
                "policyFile",
                json!({"policies": {"b": {"retry": {"maxRetries": -1}}, "a": 1}}),
            ),
            (
                "health",
                json!({"checks": {"z": {"interval": "bad"}, "a": {"bogus": 1}}}),
            ),
            ("policyFile", json!([{"a": {}}])),
        ] {
            check(target, &v);
        }
    }

    #[test]
    fn maps_are_sorted_as_the_standard_sort_sorts_them() {
        let mut seed = 7_u64;
        for len in 0..70 {
            let entries: Vec<(String, Node)> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (format!("k{}-{i}", seed >> 58), Node::PosInt(i))
                })
                .collect();
            let mut expected = entries.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(Node::map(entries), Node::Map(expected));
        }
    }

    #[test]
    fn unexpected_values_are_named_as_serde_names_them() {
        for unexp in [
            Unexpected::Bool(true),
            Unexpected::Unsigned(7),
            Unexpected::Signed(-7),
            Unexpected::Char('x'),
            Unexpected::Str("a \"b\"\n"),
            Unexpected::Bytes(b"x"),
            Unexpected::Option,
            Unexpected::NewtypeStruct,
            Unexpected::Seq,
            Unexpected::Map,
            Unexpected::Enum,
            Unexpected::UnitVariant,
            Unexpected::NewtypeVariant,
            Unexpected::TupleVariant,
            Unexpected::StructVariant,
            Unexpected::Other("other"),
        ] {
            assert_eq!(JsonUnexpected(unexp).to_string(), unexp.to_string());
        }
        assert_eq!(JsonUnexpected(Unexpected::Unit).to_string(), "null");
        for unexp in [
            Unexpected::Unit,
            Unexpected::Str("é \u{1}"),
            Unexpected::Float(1.0),
            Unexpected::Float(-1.5),
            Unexpected::Float(1e21),
            Unexpected::Float(1e-7),
            Unexpected::Float(f64::INFINITY),
            Unexpected::Float(f64::NAN),
        ] {
            assert_eq!(UnexpectedText(unexp).to_string(), unexp.to_string());
        }
    }

    #[test]
    fn floats_read_as_serde_json_writes_them() {
        fn theirs(v: f64) -> String {
            let e = <serde_json::Error as de::Error>::invalid_type(Unexpected::Float(v), &"x");
            let text = e.to_string();
            text["invalid type: floating point `".len()..text.len() - "`, expected x".len()]
                .to_owned()
        }
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            1.5,
            0.1,
            1e-5,
            1e-6,
            1.5e-5,
            1.5e-6,
            1e15,
            1e16,
            9.5e15,
            1e16 + 2.0,
            123_456_789.5,
            1e300,
            1e-300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            -1e-7,
            2e20,
            0.000_015,
            999_999_999_999_999.9,
            9_999_999_999_999_998.0,
        ];
        // Powers of two and their neighbours (a lopsided rounding interval), e.g. 2^-24.
        for e in -1074..=1023 {
            let bits: u64 = if e >= -1022 {
                ((e + 1023) as u64) << 52
            } else {
                1 << (e + 1074)
            };
            values.extend([bits, bits + 1, bits - 1].map(f64::from_bits));
        }
        assert_eq!(json_float(5.960_464_477_539_063e-8), "5.960464477539063e-8");
        for e in -330..310 {
            values.push(10f64.powi(e));
            values.push(1.234_567_890_123_4 * 10f64.powi(e));
            values.push(-3.0 * 10f64.powi(e));
        }
        // A reproducible spread of bit patterns (xorshift), every exponent.
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..60_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(f64::from_bits(x));
            // Numbers with few fraction bits: exact ties between the shortest candidates.
            let scale = [1.0, 0.5, 0.25, 0.125, 0.0625][(x % 5) as usize];
            let int = (x >> 11) % (1 << 53);
            values.push((int as f64) * scale);
            values.push((int >> (x % 40)) as f64 * scale * 10f64.powi((x % 7) as i32 - 3));
        }
        let mut compared = 0;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(json_float(v), theirs(v), "{v:e}");
            compared += 1;
        }
        assert!(compared > 150_000);
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused_by_path() {
        use crate::pipeline::PipelineConfig;
        for (json, want) in [
            (
                r#"{"timeout": ["1s", "5s"]}"#,
                "timeout: invalid type: sequence, expected struct TimeoutConfig",
            ),
            (
                r#"{"retry": {"backoff": [ "exponential" ]}}"#,
                "retry.backoff: invalid type: sequence, expected struct BackoffConfig",
            ),
            (
                r#"[1]"#,
                "invalid type: sequence, expected struct PipelineConfig",
            ),
        ] {
            let e = crate::config::from_json_str::<PipelineConfig>(json).unwrap_err();
            assert_eq!(e.to_string(), want, "{json}");
        }
        // Lists where a config takes one are still lists.
        let c: PipelineConfig = crate::config::from_json_str(
            r#"{"rateLimit": [{"rate": "5/s"}, {"rate": "50/m"}], "order": ["retry", "timeout"]}"#,
        )
        .unwrap();
        assert!(c.rate_limit.is_some() && c.order.is_some());
    }

    #[test]
    fn any_serde_format_reads_through_the_tree_and_non_finite_numbers_are_refused() {
        use crate::config::from_deserializer;
        use serde::de::value::{Error as E, F64Deserializer, MapDeserializer};
        let ok: TimeoutConfig = from_deserializer(MapDeserializer::<_, E>::new(
            [("perAttempt", "1s"), ("overall", "5s")].into_iter(),
        ))
        .unwrap();
        assert_eq!(
            ok,
            crate::config::from_json_str(r#"{"perAttempt": "1s", "overall": "5s"}"#).unwrap()
        );
        let e = from_deserializer::<TimeoutConfig, _>(MapDeserializer::<_, E>::new(
            [("perAttempt", "1s"), ("bogus", "5s")].into_iter(),
        ))
        .unwrap_err();
        assert!(
            e.to_string().starts_with("bogus: unknown field `bogus`"),
            "{e}"
        );
        for nan in [f64::NAN, f64::INFINITY] {
            let e = from_deserializer::<TimeoutConfig, _>(MapDeserializer::<_, E>::new(
                [("perAttempt", nan)].into_iter(),
            ))
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("a config holds JSON numbers, and {nan} is not one")
            );
            assert!(
                from_deserializer::<ConfigDurationProbe, _>(F64Deserializer::<E>::new(nan))
                    .is_err()
            );
        }
    }

    /// Any config type will do for a bare number.
    type ConfigDurationProbe = crate::config::ConfigDuration;

    #[test]
    fn paths_are_written_as_serde_path_to_error_writes_them() {
        let root = At::Root;
        assert_eq!(root.path(), "");
        let a = At::Key(&root, "a");
        let i = At::Index(&a, 12);
        let b = At::Key(&i, "b");
        assert_eq!(b.path(), "a[12].b");
        let top = At::Index(&root, 0);
        assert_eq!(At::Key(&top, "x").path(), "[0].x");
    }
}

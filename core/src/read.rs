//! The config types read straight from a [`Node`] tree: the route every binding takes.
//!
//! Each config type's derived `Deserialize` (kept: it is the public serde API, and costs
//! nothing where it is not used) is a state machine instantiated per type for a deserializer:
//! in the npm package's browser module that code was a fifth of the wasm. [`FromTree`] reads
//! the same tree with small, non-generic helpers and one table of field names per struct,
//! giving the same value or the same `path: reason` as `tree::deserialize` (which mirrors
//! `serde_json::Value` + `serde_path_to_error`): `tree::tests` replays every vector config
//! and thousands of mutations of each through all three routes.
//!
//! The rules the helpers follow are serde's: fields are read in key order (so the first
//! problem in key order is the one named), an unknown field is named by its own path, a
//! missing one by its struct's; the texts are serde's (`invalid type: string "x", expected
//! u32`, `unknown field ...`, `missing field ...`).

use std::collections::BTreeMap;

use serde::de::{Error as _, Unexpected};

use crate::error::ConfigError;
use crate::tree::{At, Error, Node};

/// A config type read from a [`Node`] tree.
pub trait FromTree: Sized {
    /// Read `node`, which sits at `at`; an error names the path of the first problem.
    #[doc(hidden)]
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error>;

    /// Read a whole document, naming the field path of the first problem (`""` for the root).
    fn from_tree(node: Node) -> Result<Self, ConfigError> {
        Self::read(node, &At::Root).map_err(Error::into_config_error)
    }

    /// Parse JSON text, naming the field path of the first problem: the same value or the
    /// same error as `config::from_json_str`, by a smaller route.
    fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_tree(crate::config::json_tree(text)?)
    }
}

/// `invalid type: <what node is>, expected <expected>`, at `at`.
#[cold]
#[inline(never)]
pub(crate) fn invalid_type(node: &Node, expected: &str, at: &At<'_>) -> Error {
    Error::invalid_type(node.unexpected(), &expected).at(at)
}

/// `invalid value: <unexpected>, expected <expected>`, at `at`.
#[cold]
#[inline(never)]
fn invalid_value(unexpected: Unexpected<'_>, expected: &str, at: &At<'_>) -> Error {
    Error::invalid_value(unexpected, &expected).at(at)
}

/// A refusal in the reader's own words (a conversion's reason), at `at`.
#[cold]
#[inline(never)]
pub(crate) fn custom(message: &str, at: &At<'_>) -> Error {
    Error::custom(message).at(at)
}

/// `missing field `name``, at the struct's path.
#[cold]
#[inline(never)]
pub(crate) fn missing(name: &'static str, at: &At<'_>) -> Error {
    Error::missing_field(name).at(at)
}

/// A struct's entries, in key order, each to `field` with the index of its key in `names`;
/// an unknown key is refused by its own path, naming `names`.
pub(crate) fn fields(
    node: Node,
    at: &At<'_>,
    expecting: &str,
    names: &'static [&'static str],
    field: &mut dyn FnMut(usize, Node, &At<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let Node::Map(entries) = node else {
        return Err(invalid_type(&node, expecting, at));
    };
    for (key, value) in entries {
        let here = At::Key(at, &key);
        match names.iter().position(|name| *name == key) {
            Some(index) => field(index, value, &here)?,
            None => return Err(Error::unknown_field(&key, names).at(&here)),
        }
    }
    Ok(())
}

/// The index in `names` of a unit variant, written as `"name"` or `{"name": null}` (as serde
/// reads an externally tagged enum).
pub(crate) fn unit_variant(
    node: Node,
    at: &At<'_>,
    names: &'static [&'static str],
) -> Result<usize, Error> {
    let (name, value) = variant(node, at)?;
    let index = names
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| Error::unknown_variant(&name, names).at(at))?;
    match value {
        None | Some(Node::Null) => Ok(index),
        Some(other) => Err(invalid_type(&other, "unit", &At::Key(at, &name))),
    }
}

/// A struct variant written as a bare string (`"time"`), at the variant's path.
#[cold]
#[inline(never)]
pub(crate) fn unit_variant_for_struct(at: &At<'_>) -> Error {
    Error::invalid_type(Unexpected::UnitVariant, &"struct variant").at(at)
}

/// An externally tagged enum's variant name and content (`None` when written as a string).
pub(crate) fn variant(node: Node, at: &At<'_>) -> Result<(String, Option<Node>), Error> {
    match node {
        Node::Str(name) => Ok((name, None)),
        Node::Map(mut entries) if entries.len() == 1 => {
            let (name, value) = entries.swap_remove(0);
            Ok((name, Some(value)))
        }
        Node::Map(_) => Err(invalid_value(Unexpected::Map, "map with a single key", at)),
        other => Err(invalid_type(&other, "string or map", at)),
    }
}

/// Read a struct (`Type { field: "key", ... }` with `= value` for a field that may be
/// missing): `Ok(Type { ... })`, or the first problem in key order. Returns from the
/// enclosing function on a missing required field, so use it as an expression there:
///
/// ```ignore
/// read_struct!(node, at, "struct LeaseConfig", LeaseConfig {
///     size: "size",                      // required
///     ttl: "ttl" = default_ttl(),        // the value when missing
/// })
/// ```
macro_rules! read_struct {
    ($node:expr, $at:expr, $expecting:literal, $($ty:ident)::+ {
        $($field:ident : $key:literal $(= $default:expr)?),+ $(,)?
    }) => {{
        $(let mut $field = $crate::read::read_struct!(@init $($default)?);)+
        $crate::read::fields($node, $at, $expecting, &[$($key),+], &mut |index, node, at| {
            $crate::read::read_struct!(@arm index, node, at, 0_usize, $($field $(= $default)?;)+);
            Ok(())
        })?;
        $(let $field = $crate::read::read_struct!(@take $field, $at, $key $(, $default)?);)+
        Ok($($ty)::+ { $($field),+ })
    }};
    (@init) => {
        None
    };
    (@init $default:expr) => {
        $default
    };
    // One `if` per field, by the index of its key.
    (@arm $index:ident, $node:ident, $at:ident, $n:expr, $first:ident = $default:expr; $($rest:tt)*) => {
        if $index == $n {
            $first = $crate::read::FromTree::read($node, $at)?;
            return Ok(());
        }
        $crate::read::read_struct!(@arm $index, $node, $at, $n + 1, $($rest)*);
    };
    (@arm $index:ident, $node:ident, $at:ident, $n:expr, $first:ident; $($rest:tt)*) => {
        if $index == $n {
            $first = Some($crate::read::FromTree::read($node, $at)?);
            return Ok(());
        }
        $crate::read::read_struct!(@arm $index, $node, $at, $n + 1, $($rest)*);
    };
    (@arm $index:ident, $node:ident, $at:ident, $n:expr,) => {};
    (@take $field:ident, $at:expr, $key:literal) => {
        match $field {
            Some(value) => value,
            None => return Err($crate::read::missing($key, $at)),
        }
    };
    (@take $field:ident, $at:expr, $key:literal, $default:expr) => {
        $field
    };
}
pub(crate) use read_struct;

/// `FromTree` for a unit-only enum: `read_unit_enum!(Jitter { "none" => None, ... });`
macro_rules! read_unit_enum {
    ($ty:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl $crate::read::FromTree for $ty {
            fn read(
                node: $crate::tree::Node,
                at: &$crate::tree::At<'_>,
            ) -> Result<Self, $crate::tree::Error> {
                const VALUES: &[$ty] = &[$($ty::$variant),+];
                let index = $crate::read::unit_variant(node, at, &[$($name),+])?;
                Ok(VALUES[index])
            }
        }
    };
}
pub(crate) use read_unit_enum;

impl<T: FromTree> FromTree for Option<T> {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        match node {
            Node::Null => Ok(None),
            node => T::read(node, at).map(Some),
        }
    }
}

impl<T: FromTree> FromTree for Vec<T> {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        let Node::Seq(items) = node else {
            return Err(invalid_type(&node, "a sequence", at));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            out.push(T::read(item, &At::Index(at, i))?);
        }
        Ok(out)
    }
}

impl<T: FromTree> FromTree for BTreeMap<String, T> {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        let Node::Map(entries) = node else {
            return Err(invalid_type(&node, "a map", at));
        };
        let mut out = BTreeMap::new();
        for (key, value) in entries {
            let value = T::read(value, &At::Key(at, &key))?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

impl FromTree for [u64; 4] {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        const EXPECTING: &str = "an array of length 4";
        let Node::Seq(items) = node else {
            return Err(invalid_type(&node, EXPECTING, at));
        };
        let len = items.len();
        let mut out = [0; 4];
        let mut items = items.into_iter();
        for (i, slot) in out.iter_mut().enumerate() {
            let Some(item) = items.next() else {
                return Err(Error::invalid_length(i, &EXPECTING).at(at));
            };
            *slot = u64::read(item, &At::Index(at, i))?;
        }
        if items.len() > 0 {
            return Err(Error::invalid_length(len, &"fewer elements in array").at(at));
        }
        Ok(out)
    }
}

impl FromTree for bool {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        match node {
            Node::Bool(b) => Ok(b),
            other => Err(invalid_type(&other, "a boolean", at)),
        }
    }
}

impl FromTree for String {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        match node {
            Node::Str(s) => Ok(s),
            other => Err(invalid_type(&other, "a string", at)),
        }
    }
}

impl FromTree for f64 {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        match node {
            Node::PosInt(n) => Ok(n as f64),
            Node::NegInt(n) => Ok(n as f64),
            Node::Float(f) => Ok(f),
            other => Err(invalid_type(&other, "f64", at)),
        }
    }
}

/// An unsigned integer no larger than `max`, as serde's primitive visitor for `expecting`
/// reads one.
fn unsigned(node: Node, at: &At<'_>, max: u64, expecting: &str) -> Result<u64, Error> {
    match node {
        Node::PosInt(n) if n <= max => Ok(n),
        Node::PosInt(n) => Err(invalid_value(Unexpected::Unsigned(n), expecting, at)),
        Node::NegInt(n) => Err(invalid_value(Unexpected::Signed(n), expecting, at)),
        other => Err(invalid_type(&other, expecting, at)),
    }
}

impl FromTree for u64 {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        unsigned(node, at, u64::MAX, "u64")
    }
}

impl FromTree for u32 {
    fn read(node: Node, at: &At<'_>) -> Result<Self, Error> {
        unsigned(node, at, u64::from(u32::MAX), "u32").map(|n| n as u32)
    }
}

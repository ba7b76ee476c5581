//! Configs from JS values: a JS value is read into the core's [`Node`] tree exactly as
//! `serde-wasm-bindgen` read it into a `serde_json::Value` (same number classes, keys in
//! `BTreeMap` order, `NaN` and infinities as `null`, the same refusals with the same texts),
//! then read by the config type itself (`tripwire_core::FromTree`), as every binding's config
//! is; and a tree the core writes (`tripwire_core::ToTree`) as a plain JS value.

// The `json-config` size experiment parses JSON text with the core instead.
#![cfg_attr(feature = "json-config", allow(dead_code))]

use js_sys::{Array, ArrayBuffer, Number, Object, Symbol, Uint8Array};
use tripwire_core::tree::{Node, Unexpected, UnexpectedText};
use wasm_bindgen::{JsCast, JsValue};

/// Read a JS value as `serde-wasm-bindgen` read it into a `serde_json::Value`. The error is
/// the text of the JS `Error` it threw (`"Error: invalid type: ..."`).
pub fn from_js(value: &JsValue) -> Result<Node, String> {
    if value.loose_eq(&JsValue::NULL) {
        Ok(Node::Null)
    } else if let Some(b) = value.as_bool() {
        Ok(Node::Bool(b))
    } else if value.is_bigint() {
        match i64::try_from(value.clone()) {
            Ok(n) => Ok(Node::int(n)),
            Err(value) => match u64::try_from(value) {
                Ok(n) => Ok(Node::PosInt(n)),
                Err(_) => Err(js_error(
                    "Couldn't deserialize i64 or u64 from a BigInt outside i64::MIN..u64::MAX bounds",
                )),
            },
        }
    } else if let Some(f) = value.as_f64() {
        Ok(if Number::is_safe_integer(value) {
            Node::int(f as i64)
        } else if f.is_finite() {
            Node::Float(f)
        } else {
            // serde_json's Value has no NaN or infinity: it holds them as null.
            Node::Null
        })
    } else if let Some(s) = value.as_string() {
        Ok(Node::Str(s))
    } else if Array::is_array(value) {
        let mut items = Vec::new();
        if let Some(array) = value.dyn_ref::<Array>() {
            for item in array.iter() {
                items.push(from_js(&item)?);
            }
        } else if let Some(iter) = js_sys::try_iter(value).map_err(|e| js_string(&e))? {
            for item in iter {
                items.push(from_js(&item.map_err(|e| js_string(&e))?)?);
            }
        } else {
            return Err(unexpected(value, "any valid JSON value"));
        }
        Ok(Node::Seq(items))
    } else if value.is_instance_of::<Uint8Array>() || value.is_instance_of::<ArrayBuffer>() {
        Err(js_error(
            "invalid type: byte array, expected any valid JSON value",
        ))
    } else if value.is_object()
        && (!Symbol::iterator().js_in(value) || value.is_instance_of::<js_sys::Map>())
    {
        let mut entries = Vec::new();
        match js_sys::try_iter(value).map_err(|e| js_string(&e))? {
            Some(iter) => {
                for pair in iter {
                    entries.push(entry(pair.map_err(|e| js_string(&e))?, entries.is_empty())?);
                }
            }
            None => {
                for pair in Object::entries(value.unchecked_ref()).iter() {
                    entries.push(entry(pair, entries.is_empty())?);
                }
            }
        }
        Ok(Node::map(entries))
    } else {
        Err(unexpected(value, "any valid JSON value"))
    }
}

/// One `[key, value]` pair of an object or `Map`: the key must be a string (serde_json's
/// Value reads the first key with its "a string key" visitor and the rest as `String`s).
fn entry(pair: JsValue, first: bool) -> Result<(String, Node), String> {
    let pair: Array = pair.unchecked_into();
    let key = pair.get(0);
    let Some(key) = key.as_string() else {
        return Err(unexpected(
            &key,
            if first { "a string key" } else { "a string" },
        ));
    };
    Ok((key, from_js(&pair.get(1))?))
}

/// serde-wasm-bindgen's invalid-type error for `value`, as its JS `Error`'s text.
#[cold]
#[inline(never)]
fn unexpected(value: &JsValue, expected: &str) -> String {
    let text;
    let unexp = if value.loose_eq(&JsValue::NULL) {
        Unexpected::Unit
    } else if let Some(b) = value.as_bool() {
        Unexpected::Bool(b)
    } else if let Some(f) = value.as_f64() {
        Unexpected::Float(f)
    } else if let Some(s) = value.as_string() {
        text = s;
        Unexpected::Str(&text)
    } else if value.is_instance_of::<Uint8Array>() || value.is_instance_of::<ArrayBuffer>() {
        Unexpected::Bytes(&[])
    } else {
        text = format!("{value:?}");
        Unexpected::Other(&text)
    };
    js_error(&format!(
        "invalid type: {}, expected {expected}",
        UnexpectedText(unexp)
    ))
}

/// The text of `new Error(message)`, as JS's `String()` writes it.
#[cold]
#[inline(never)]
fn js_error(message: &str) -> String {
    format!("Error: {message}")
}

/// A thrown JS value as JS's `String()` writes it.
#[cold]
#[inline(never)]
fn js_string(value: &JsValue) -> String {
    #[wasm_bindgen::prelude::wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = String)]
        fn js_to_string(value: &JsValue) -> String;
    }
    js_to_string(value)
}

/// A tree written by the core (`tripwire_core::ToTree`) as a plain JS value: objects with
/// their keys in the tree's order, integers as numbers (exact up to 2^53).
pub fn to_js(node: Node) -> JsValue {
    match node {
        Node::Null => JsValue::NULL,
        Node::Bool(b) => JsValue::from_bool(b),
        Node::PosInt(n) => JsValue::from_f64(n as f64),
        Node::NegInt(n) => JsValue::from_f64(n as f64),
        Node::Float(f) => JsValue::from_f64(f),
        Node::Str(s) => JsValue::from_str(&s),
        Node::Seq(items) => {
            let array = Array::new_with_length(items.len() as u32);
            for (i, item) in items.into_iter().enumerate() {
                array.set(i as u32, to_js(item));
            }
            array.into()
        }
        Node::Map(entries) => {
            let object = Object::new();
            for (key, value) in entries {
                // Setting a data property on a fresh plain object cannot throw.
                let _ = js_sys::Reflect::set(&object, &JsValue::from_str(&key), &to_js(value));
            }
            object.into()
        }
    }
}

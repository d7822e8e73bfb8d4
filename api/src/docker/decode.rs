//! Request bodies read the way Docker's daemon reads them: Go's `encoding/json` decoding into Go structs.
//!
//! Clients of the Docker Engine API (the docker CLI and Go client, the Python SDK, compose, ...) rely on three rules
//! of that decoder, which a strict serde decoder does not share:
//! - **Keys match struct fields case-insensitively**, an exact match first (`{"mode": {"replicated": ...}}` sets
//!   `Mode.Replicated`). The fold is Go's `bytes.EqualFold`: Unicode simple case folding, so `ſ` (U+017F) matches
//!   `s` and the Kelvin sign (U+212A) matches `k`. Only struct field names fold: map keys (labels, options) are
//!   data and stay exactly as sent.
//! - **`null` is the zero value**: a `null` field is as if absent (the field keeps its default); a `null` inside a
//!   list or a map value decodes to the element's zero value (`""`, `0`, `false`, empty).
//! - **Unknown fields are ignored.** (A *known* field whose value skep cannot carry out is refused later, by the
//!   validation of the spec: see `fields`.)
//!
//! Duplicate keys: the last one wins, as in Go.
//!
//! [`from_slice`] parses the body into a JSON tree that keeps keys in order (the body size is bounded by the HTTP layer, the
//! nesting by serde_json's recursion limit and by [`MAX_DEPTH`]), then drives the target type's `Deserialize`
//! through an adapter that applies the rules above. It works for any `#[derive(Deserialize)]` type without
//! per-field attributes, because serde hands the adapter each struct's field names in `deserialize_struct`. The
//! one exception is a struct with `#[serde(flatten)]`: serde reads it as a map, so its keys cannot be matched to
//! fields here; request types therefore do not use `flatten`.
//!
//! Errors read as Go's (`json: cannot unmarshal number -1 into Go struct field ReplicatedService.Mode.Replicated.
//! Replicas of type uint64`), because scripts and clients match on them. A struct's Go name is its serde name, so a
//! Rust type named differently from its Go counterpart carries `#[serde(rename = "GoName")]`.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;
use serde_json::Number;
use std::fmt;
use std::rc::Rc;

/// Deepest nesting of lists and objects a body may have (swarm specs need about 8).
pub const MAX_DEPTH: usize = 64;

/// Why a request body could not be decoded. The text is the one Docker's daemon answers with (status 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is empty.
    #[error("got EOF while reading request body")]
    Empty,
    /// The body is not JSON (or is cut short).
    #[error("{0}")]
    Syntax(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("json: request body nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A value of the wrong type for its field, or out of its range (Go's `UnmarshalTypeError`).
    #[error("{0}")]
    Type(String),
    /// Anything else a type's `Deserialize` refused.
    #[error("json: {0}")]
    Other(String),
}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::Other(msg.to_string())
    }
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped, escapes honoured). Linear, no allocation.
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Decodes a request body as Docker does (see the module docs). A body nested deeper than [`MAX_DEPTH`] is refused
/// whole, also where the nesting is in fields that would be ignored.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    if json_depth(bytes) > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let value: Json = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => DecodeError::Syntax("unexpected EOF".into()),
        _ => DecodeError::Syntax(format!("invalid JSON: {e}")),
    })?;
    T::deserialize(Node { value, at: None, depth: 0 })
}

/// A parsed body that keeps each object's keys in their order, duplicates included: Go reads keys in order and
/// the last of two keys for one field wins (a map type would sort them or drop one).
enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(JsonVisitor)
    }
}

/// Go's `bytes.EqualFold` for a JSON key against a field name: Unicode simple case folding.
pub fn go_fold_eq(field: &str, key: &str) -> bool {
    let (mut a, mut b) = (field.chars(), key.chars());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y || fold(x) == fold(y) => {}
            _ => return false,
        }
    }
}

/// The representative of `c`'s simple case-folding orbit, as far as the orbit can be told from Rust's one-to-one
/// case mappings: K, k and the Kelvin sign all give `k`; S, s and `ſ` give `s`; `ß` and `ẞ` give `ß`. The dotless
/// `ı` and dotted `İ` fold only to themselves in Go, so they are kept apart.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if matches!(c, '\u{0130}' | '\u{0131}') {
        return c;
    }
    fn one(mut it: impl Iterator<Item = char>) -> Option<char> {
        let c = it.next()?;
        it.next().is_none().then_some(c)
    }
    let upper = one(c.to_uppercase()).unwrap_or(c);
    one(upper.to_lowercase()).unwrap_or(upper)
}

/// Where a value sits: the chain of struct fields from the body's root, for error messages.
struct Frame {
    parent: Option<Rc<Frame>>,
    /// The Go name of the struct holding the field.
    strukt: &'static str,
    /// The field's name.
    field: &'static str,
}

impl Frame {
    fn path(&self) -> String {
        match &self.parent {
            Some(p) => format!("{}.{}", p.path(), self.field),
            None => self.field.to_string(),
        }
    }
}

/// One JSON value, with where it is, as a serde `Deserializer`.
struct Node {
    value: Json,
    at: Option<Rc<Frame>>,
    /// Lists and objects around this value.
    depth: usize,
}

/// How Go names a JSON value in an `UnmarshalTypeError`.
fn go_kind(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(_) => "bool".into(),
        Json::Number(n) => format!("number {n}"),
        Json::String(_) => "string".into(),
        Json::Array(_) => "array".into(),
        Json::Object(_) => "object".into(),
    }
}

impl Node {
    fn child(&self, value: Json, at: Option<Rc<Frame>>) -> Node {
        Node { value, at, depth: self.depth + 1 }
    }

    /// Go's `UnmarshalTypeError` text for this value and a Go type.
    fn mismatch(&self, go_type: &str) -> DecodeError {
        let kind = go_kind(&self.value);
        DecodeError::Type(match &self.at {
            Some(f) => format!("json: cannot unmarshal {kind} into Go struct field {}.{} of type {go_type}", f.strukt, f.path()),
            None => format!("json: cannot unmarshal {kind} into Go value of type {go_type}"),
        })
    }

    fn nested(&self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(())
    }

    fn unsigned(&self, bits: u32, go_type: &str) -> Result<u64, DecodeError> {
        match &self.value {
            Json::Null => Ok(0),
            Json::Number(n) => n.as_u64().filter(|v| bits == 64 || *v < (1u64 << bits)).ok_or_else(|| self.mismatch(go_type)),
            _ => Err(self.mismatch(go_type)),
        }
    }

    fn signed(&self, bits: u32, go_type: &str) -> Result<i64, DecodeError> {
        let fits = |v: i64| bits == 64 || (v >= -(1i64 << (bits - 1)) && v < (1i64 << (bits - 1)));
        match &self.value {
            Json::Null => Ok(0),
            Json::Number(n) => n.as_i64().filter(|v| fits(*v)).ok_or_else(|| self.mismatch(go_type)),
            _ => Err(self.mismatch(go_type)),
        }
    }

    fn float(&self, go_type: &str) -> Result<f64, DecodeError> {
        match &self.value {
            Json::Null => Ok(0.0),
            Json::Number(n) => n.as_f64().ok_or_else(|| self.mismatch(go_type)),
            _ => Err(self.mismatch(go_type)),
        }
    }

    fn seq<'de, V: Visitor<'de>>(self, visitor: V, go_type: &str) -> Result<V::Value, DecodeError> {
        if matches!(self.value, Json::Array(_)) {
            self.nested()?;
        }
        match self.value {
            Json::Null => visitor.visit_seq(Seq { items: Vec::new().into_iter(), parent: None, depth: 0 }),
            Json::Array(items) => {
                visitor.visit_seq(Seq { items: items.into_iter(), parent: self.at, depth: self.depth + 1 })
            }
            _ => Err(self.mismatch(go_type)),
        }
    }

    /// A struct: keys renamed to the field they match (exact, then folded), `null` fields dropped, last key wins.
    fn fields(map: Vec<(String, Json)>, fields: &'static [&'static str]) -> Vec<(String, Json, Option<&'static str>)> {
        let mut out: Vec<(String, Json, Option<&'static str>)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            let field = fields
                .iter()
                .find(|f| **f == key)
                .or_else(|| fields.iter().find(|f| go_fold_eq(f, &key)))
                .copied();
            let name = field.map_or(key, str::to_string);
            out.retain(|(k, _, _)| *k != name);
            if !matches!(value, Json::Null) {
                out.push((name, value, field));
            }
        }
        out
    }
}

macro_rules! unsigned {
    ($method:ident, $visit:ident, $t:ty, $bits:expr, $go:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            visitor.$visit(self.unsigned($bits, $go)? as $t)
        }
    };
}

macro_rules! signed {
    ($method:ident, $visit:ident, $t:ty, $bits:expr, $go:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            visitor.$visit(self.signed($bits, $go)? as $t)
        }
    };
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(b),
            Json::Number(ref n) => visit_number(n, visitor),
            Json::String(s) => visitor.visit_string(s),
            Json::Array(_) => self.seq(visitor, "slice"),
            Json::Object(map) => {
                let node = Node { value: Json::Null, ..self };
                node.nested()?;
                let entries = map.into_iter().map(|(k, v)| (k, v, None)).collect::<Vec<_>>();
                visitor.visit_map(Fields { entries: entries.into_iter(), pending: None, node, strukt: "" })
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::Null => visitor.visit_bool(false),
            Json::Bool(b) => visitor.visit_bool(b),
            _ => Err(self.mismatch("bool")),
        }
    }

    unsigned!(deserialize_u8, visit_u8, u8, 8, "uint8");
    unsigned!(deserialize_u16, visit_u16, u16, 16, "uint16");
    unsigned!(deserialize_u32, visit_u32, u32, 32, "uint32");
    unsigned!(deserialize_u64, visit_u64, u64, 64, "uint64");
    signed!(deserialize_i8, visit_i8, i8, 8, "int8");
    signed!(deserialize_i16, visit_i16, i16, 16, "int16");
    signed!(deserialize_i32, visit_i32, i32, 32, "int32");
    signed!(deserialize_i64, visit_i64, i64, 64, "int64");

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(self.float("float32")? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(self.float("float64")?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::Null => visitor.visit_str(""),
            Json::String(s) => visitor.visit_string(s),
            _ => Err(self.mismatch("string")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.seq(visitor, "slice")
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        self.seq(visitor, "array")
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        self.seq(visitor, "array")
    }

    /// A map with the caller's keys (labels, options): keys are data, never folded.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::Null | Json::Object(_) => self.deserialize_any(visitor),
            _ => Err(self.mismatch("map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let map = match self.value {
            Json::Null => Vec::new(),
            Json::Object(map) => map,
            _ => return Err(self.mismatch(&format!("swarm.{name}"))),
        };
        let node = Node { value: Json::Null, ..self };
        node.nested()?;
        let entries = Node::fields(map, fields);
        visitor.visit_map(Fields { entries: entries.into_iter(), pending: None, node, strukt: name })
    }

    /// Enums are not Go's: their names match exactly (`"any"`, `{"Variant": ...}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Json::String(s) => visitor.visit_enum(s.into_deserializer()),
            Json::Object(map) if map.len() == 1 => {
                let (variant, value) = map.into_iter().next().expect("one entry");
                let value = Node { value, at: self.at.clone(), depth: self.depth + 1 };
                visitor.visit_enum(Variant { variant, value })
            }
            _ => Err(self.mismatch(name)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, DecodeError> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else {
        visitor.visit_f64(n.as_f64().unwrap_or(0.0))
    }
}

/// The elements of a list.
struct Seq {
    items: std::vec::IntoIter<Json>,
    parent: Option<Rc<Frame>>,
    depth: usize,
}

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some(value) => seed.deserialize(Node { value, at: self.parent.clone(), depth: self.depth }).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of an object: a struct's (keys already matched to fields) or a map's.
struct Fields {
    entries: std::vec::IntoIter<(String, Json, Option<&'static str>)>,
    pending: Option<(Json, Option<&'static str>)>,
    /// The object itself (its place and depth; its value was taken).
    node: Node,
    /// The Go name of the struct, empty for a map.
    strukt: &'static str,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        match self.entries.next() {
            Some((key, value, field)) => {
                self.pending = Some((value, field));
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DecodeError> {
        let (value, field) = self.pending.take().ok_or_else(|| DecodeError::Other("value without a key".into()))?;
        let at = match field {
            Some(field) => Some(Rc::new(Frame { parent: self.node.at.clone(), strukt: self.strukt, field })),
            None => self.node.at.clone(),
        };
        let child = self.node.child(value, at.clone());
        seed.deserialize(child).map_err(|e| match (e, &at) {
            (DecodeError::Other(m), Some(f)) => DecodeError::Other(format!("{m} (in {}.{})", f.strukt, f.path())),
            (e, _) => e,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `{"Variant": value}`.
struct Variant {
    variant: String,
    value: Node,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = DecodeError;
    type Variant = Node;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Node), DecodeError> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Node {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests;

//! Closed sets of words the API spells in lowercase (`manager`, `drain`, `ready` …), as Rust enums.
//!
//! [`vocabulary!`] declares one: the enum, its spelling ([`Display`](std::fmt::Display), `as_str`), parsing
//! ([`FromStr`](std::str::FromStr), failing with [`InvalidValue`]), and serde. Serde writes and reads the word itself
//! in every format (`serialize_str`), not a variant: in JSON that is what Docker sends, and in bincode (node-to-node
//! messages) it is the same bytes as the `String` these fields were before, so stores, `state.json` and messages
//! written by earlier builds decode unchanged.

/// A word that is not one of a vocabulary's values. Its text is the one skep answered before these were enums
/// (`invalid role 'boss'`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{value}'")]
pub struct InvalidValue {
    /// What the word was meant to be (`role`, `availability`).
    pub what: &'static str,
    /// The word as given.
    pub value: String,
}

/// Declares a vocabulary enum. `what` names it in errors; each variant is followed by its spelling.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The API spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// A request field where an empty string means "not given" (keep the current value, or the default):
            /// `Ok(None)` for `""`, the value for its spelling, an [`InvalidValue`](crate::docker::InvalidValue) for
            /// anything else.
            pub fn from_request(s: &str) -> Result<Option<$name>, $crate::docker::InvalidValue> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse().map(Some)
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::docker::InvalidValue;
            /// Exact spelling only (`Manager` is refused, as skep always did).
            fn from_str(s: &str) -> Result<$name, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::docker::InvalidValue { what: $what, value: s.to_string() }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct Word;
                impl ::serde::de::Visitor<'_> for Word {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a ", $what))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Word)
            }
        }
    };
}

pub(crate) use vocabulary;

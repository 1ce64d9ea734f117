//! MessagePack encoding with named fields, and decoding with the schema-version check.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::SCHEMA_VERSION;

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a MessagePack map of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message has no `v` field, or one this reader does not understand.
    #[error("unsupported schema version {found:?} (this reader understands {SCHEMA_VERSION})")]
    UnsupportedVersion {
        /// The version found (`None`: no `v` field).
        found: Option<u32>,
    },
    /// Serialisation failed (only for types that cannot be represented, never for ours).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Only the version, read before the whole message so that an unknown version is reported as
/// such rather than as whatever field happens not to parse.
#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

/// Encodes `msg` as a MessagePack map with named fields.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(msg).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Deepest nesting of arrays and maps a message may have. Ours nest 3 deep (a window request's
/// speakers' embeddings); unknown fields from a newer writer get room to grow, but a hostile
/// `[[[[…]]]]` cannot recurse through the decoder (rmp-serde's default limit is 1024, whose
/// recursion is a sizeable share of a 2 MiB task stack).
pub const MAX_DEPTH: usize = 32;

fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Decodes a message, checking its `v` first. Unknown fields are ignored.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let probe: VersionProbe = from_slice(bytes)?;
    if probe.v != Some(SCHEMA_VERSION) {
        return Err(CodecError::UnsupportedVersion { found: probe.v });
    }
    from_slice(bytes)
}

/// `serde(default)` helper: the current schema version.
pub(crate) fn current_version() -> u32 {
    SCHEMA_VERSION
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// Encodes, decodes, and checks equality; returns the bytes.
    pub(crate) fn round_trip<T>(msg: &T) -> Vec<u8>
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode(msg).expect("encode");
        let back: T = decode(&bytes).expect("decode");
        assert_eq!(&back, msg);
        bytes
    }

    /// Re-encodes `msg` with an extra field `from_the_future` (a newer writer) and checks an
    /// old reader still decodes it to the same value.
    pub(crate) fn ignores_unknown_field<T>(msg: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode(msg).expect("encode");
        let mut value: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).expect("value");
        let rmpv::Value::Map(ref mut entries) = value else {
            panic!("message is not a map")
        };
        entries.push((
            rmpv::Value::from("from_the_future"),
            rmpv::Value::Map(vec![(rmpv::Value::from("x"), rmpv::Value::from(1))]),
        ));
        let mut extended = Vec::new();
        rmpv::encode::write_value(&mut extended, &value).expect("write");
        let back: T = decode(&extended).expect("decode with extra field");
        assert_eq!(&back, msg);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tiny {
        v: u32,
        x: i32,
    }

    #[test]
    fn version_is_checked() {
        let ok = encode(&Tiny { v: 1, x: 3 }).unwrap();
        assert_eq!(decode::<Tiny>(&ok).unwrap(), Tiny { v: 1, x: 3 });
        let future = encode(&Tiny { v: 2, x: 3 }).unwrap();
        assert!(matches!(
            decode::<Tiny>(&future),
            Err(CodecError::UnsupportedVersion { found: Some(2) })
        ));
        #[derive(Serialize)]
        struct NoVersion {
            x: i32,
        }
        let none = encode(&NoVersion { x: 1 }).unwrap();
        assert!(matches!(
            decode::<Tiny>(&none),
            Err(CodecError::UnsupportedVersion { found: None })
        ));
        assert!(matches!(
            decode::<Tiny>(b"\xc1garbage"),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(decode::<Tiny>(b""), Err(CodecError::Malformed(_))));
    }

    /// `Tiny` with an unknown field of `depth` nested arrays, written by hand (a nested
    /// `rmpv::Value` would itself recurse that deep to encode and drop).
    fn nested(depth: usize) -> Vec<u8> {
        let mut bytes = encode(&Tiny { v: 1, x: 3 }).unwrap();
        assert_eq!(bytes[0], 0x82, "a fixmap of 2");
        bytes[0] = 0x83;
        bytes.extend_from_slice(&[0xa4, b'd', b'e', b'e', b'p']);
        bytes.extend(std::iter::repeat_n(0x91, depth)); // fixarray of 1
        bytes.push(0xc0); // nil
        bytes
    }

    #[test]
    fn nesting_is_bounded() {
        assert_eq!(decode::<Tiny>(&nested(20)).unwrap(), Tiny { v: 1, x: 3 });
        for depth in [MAX_DEPTH, 100_000] {
            assert!(
                matches!(
                    decode::<Tiny>(&nested(depth)),
                    Err(CodecError::Malformed(_))
                ),
                "{depth}"
            );
        }
    }
}

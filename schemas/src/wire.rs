//! The Confluent Schema Registry wire format: byte 0 is the magic byte `0x00`, bytes 1..5 the
//! writer schema's registry id (u32, big-endian), then the Avro binary body.

/// The only magic byte the format defines.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the header before the Avro body.
pub const HEADER_LEN: usize = 5;

/// A message is not in the Confluent wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message: expected a 5-byte Confluent header and an Avro body")]
    Empty,
    #[error(
        "wrong magic byte 0x{found:02x} at offset 0: expected 0x00 (not a Confluent-framed Avro message)"
    )]
    WrongMagicByte { found: u8 },
    #[error("message is {len} bytes long, shorter than the 5-byte Confluent header")]
    TooShort { len: usize },
}

/// Frames an Avro body written with the schema registered as `schema_id`.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.push(MAGIC_BYTE);
    bytes.extend_from_slice(&schema_id.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Splits a framed message into its writer schema id and Avro body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match bytes {
        [] => Err(WireError::Empty),
        [magic, ..] if *magic != MAGIC_BYTE => Err(WireError::WrongMagicByte { found: *magic }),
        [_, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        short => Err(WireError::TooShort { len: short.len() }),
    }
}

//! The hub's Avro schemas and their Confluent wire format.
//!
//! - [`event`] and [`task`]: the records (civic event, dispatched task, status change);
//! - [`AvroRecord`]: their mapping to the `.avsc` schemas in this crate's directory;
//! - [`wire`]: the 5-byte Confluent header (magic byte, schema id);
//! - [`Registry`]: schema ids from a Confluent Schema Registry (feature `http-registry`) or a
//!   local JSON file;
//! - [`Codec`]: records to framed bytes and back, with schema resolution on read.

pub mod codec;
pub mod csv;
pub mod error;
pub mod event;
pub mod limits;
pub mod record;
pub mod registry;
pub mod task;
pub mod wire;

/// The Avro library these schemas are built with, so users need not align its version.
pub use apache_avro;

pub use codec::{decode_body, encode_with_id, value_subject, Codec};
pub use error::{DecodeError, EncodeError};
pub use record::AvroRecord;
#[cfg(feature = "http-registry")]
pub use registry::HttpRegistry;
pub use registry::{LocalRegistry, Registry, RegistryError};
pub use wire::{frame, unframe, WireError};

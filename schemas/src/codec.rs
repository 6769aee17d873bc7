//! Encoding records to Confluent-framed Avro and back, with the writer schema's id from a
//! [`Registry`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use crate::error::{DecodeError, EncodeError};
use crate::record::AvroRecord;
use crate::registry::Registry;
use crate::wire::{frame, unframe};

/// The registry subject of a topic's record values (Confluent's `TopicNameStrategy`).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Encodes and decodes records, registering this hub's writer schemas and fetching other
/// writers' schemas as needed. Share one per process (e.g. in an `Arc`): its caches make every
/// call after the first per subject or schema id free of registry round trips.
#[derive(Debug)]
pub struct Codec {
    registry: Registry,
    /// Record name → subject → the id this hub's schema has under that subject.
    writer_ids: Mutex<HashMap<&'static str, HashMap<String, u32>>>,
    /// (writer schema id, record name) → whether that writer can be read as the record.
    /// Remembered both ways, so a topic full of unreadable messages does not repeat the check
    /// for each.
    readable: Mutex<HashMap<(u32, &'static str), Readability>>,
}

/// Whether the writer schema with an id can be read as a record type, and if not, why.
type Readability = Result<(), String>;

impl Codec {
    pub fn new(registry: Registry) -> Self {
        Codec {
            registry,
            writer_ids: Mutex::default(),
            readable: Mutex::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Encodes `record` for a topic whose value subject is `subject` (see [`value_subject`]).
    pub async fn encode<T: AvroRecord>(
        &self,
        subject: &str,
        record: &T,
    ) -> Result<Vec<u8>, EncodeError> {
        let id = self.writer_id::<T>(subject).await?;
        encode_with_id(id, record)
    }

    /// Decodes a framed message into `T`, resolving the writer's schema (found by the id in the
    /// frame) to `T`'s schema, so records written by older or newer compatible schemas read.
    pub async fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (schema_id, body) = unframe(bytes)?;
        let writer = self
            .registry
            .schema_by_id(schema_id)
            .await
            .map_err(|source| DecodeError::Registry { schema_id, source })?;
        self.check_readable::<T>(schema_id, &writer)?;
        decode_body(&writer, body)
    }

    async fn writer_id<T: AvroRecord>(&self, subject: &str) -> Result<u32, EncodeError> {
        if let Some(id) = self
            .writer_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(T::SCHEMA_NAME)
            .and_then(|by_subject| by_subject.get(subject))
        {
            return Ok(*id);
        }
        let id = self
            .registry
            .register(subject, T::schema())
            .await
            .map_err(|source| EncodeError::Registry {
                record: T::SCHEMA_NAME,
                subject: subject.to_owned(),
                source,
            })?;
        self.writer_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(T::SCHEMA_NAME)
            .or_default()
            .insert(subject.to_owned(), id);
        Ok(id)
    }

    /// Schema resolution of an incompatible writer fails message by message with errors that
    /// may quote field values; checking the schemas once gives one clear reason instead.
    fn check_readable<T: AvroRecord>(
        &self,
        schema_id: u32,
        writer: &Schema,
    ) -> Result<(), DecodeError> {
        let mut readable = self.readable.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = readable
            .entry((schema_id, T::SCHEMA_NAME))
            .or_insert_with(|| {
                SchemaCompatibility::can_read(writer, T::schema()).map_err(|e| e.to_string())
            });
        verdict
            .clone()
            .map_err(|reason| DecodeError::IncompatibleWriterSchema {
                schema_id,
                record: T::SCHEMA_NAME,
                reason,
            })
    }
}

/// Encodes `record` with this hub's schema and frames it with `schema_id`, the id that schema
/// has in the registry. For callers that already know the id (tests, benchmarks, replays).
pub fn encode_with_id<T: AvroRecord>(schema_id: u32, record: &T) -> Result<Vec<u8>, EncodeError> {
    let body = apache_avro::to_avro_datum(T::schema(), record.to_avro()).map_err(|source| {
        EncodeError::Avro {
            record: T::SCHEMA_NAME,
            source,
        }
    })?;
    Ok(frame(schema_id, &body))
}

/// Reads an unframed Avro body written with `writer_schema` into `T`.
pub fn decode_body<T: AvroRecord>(writer_schema: &Schema, body: &[u8]) -> Result<T, DecodeError> {
    let mut rest = body;
    let value = apache_avro::from_avro_datum(writer_schema, &mut rest, Some(T::schema())).map_err(
        |source| DecodeError::Avro {
            record: T::SCHEMA_NAME,
            source,
        },
    )?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            record: T::SCHEMA_NAME,
            count: rest.len(),
        });
    }
    T::from_avro(value)
}

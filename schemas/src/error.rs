//! Errors of encoding and decoding records.
//!
//! Messages name the record, field, schema id or subject that was wrong. The messages written
//! here never include field values: a record may carry personal data, and these messages end
//! up in logs and in dead-letter reasons.

use crate::registry::RegistryError;
use crate::wire::WireError;

/// A record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("registering the schema of {record} under subject `{subject}`: {source}")]
    Registry {
        record: &'static str,
        subject: String,
        #[source]
        source: RegistryError,
    },
    /// The value built from the record does not fit its own schema: a defect of this crate.
    #[error("{record} does not fit its own Avro schema: {source}")]
    Avro {
        record: &'static str,
        #[source]
        source: apache_avro::Error,
    },
}

/// A message could not be decoded into a record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("fetching writer schema {schema_id}: {source}")]
    Registry {
        schema_id: u32,
        #[source]
        source: RegistryError,
    },
    /// The writer's schema cannot be resolved to this hub's schema (an incompatible change).
    #[error("writer schema {schema_id} cannot be read as {record}: {reason}")]
    IncompatibleWriterSchema {
        schema_id: u32,
        record: &'static str,
        reason: String,
    },
    #[error("Avro body could not be read as {record} with its writer schema: {source}")]
    Avro {
        record: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    /// Bytes left over after a complete record: the body was written with another schema.
    #[error(
        "{count} unread bytes after the {record} body: the writer schema does not match the body"
    )]
    TrailingBytes { record: &'static str, count: usize },
    #[error("{record} field `{field}`: {problem}")]
    Field {
        record: &'static str,
        /// Dotted path, e.g. `location.point.lon` or `co_handlers.2.role`.
        field: String,
        problem: String,
    },
}

//! Where writer schemas are registered and looked up by id.
//!
//! [`Registry::Http`] talks to a Confluent-compatible Schema Registry (what a city runs);
//! [`Registry::Local`] keeps the ids in a JSON file, for a single hub process on one machine,
//! tests and demos. Both cache what they have seen, so after warm-up an id or schema lookup is
//! a map read.

use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::Schema;

#[cfg(feature = "http-registry")]
mod http;
mod local;

#[cfg(feature = "http-registry")]
pub use http::HttpRegistry;
pub use local::LocalRegistry;

/// A schema registry: assigns ids to schemas registered under subjects, and returns the schema
/// of an id.
#[derive(Debug)]
pub enum Registry {
    Local(LocalRegistry),
    #[cfg(feature = "http-registry")]
    Http(HttpRegistry),
}

impl Registry {
    /// Registers `schema` under `subject` and returns its id. Registering a schema that is
    /// already registered returns the id it already has.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        match self {
            Registry::Local(local) => local.register(subject, schema),
            #[cfg(feature = "http-registry")]
            Registry::Http(http) => http.register(subject, schema).await,
        }
    }

    /// The schema registered as `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        match self {
            Registry::Local(local) => local.schema_by_id(id),
            #[cfg(feature = "http-registry")]
            Registry::Http(http) => http.schema_by_id(id).await,
        }
    }
}

impl From<LocalRegistry> for Registry {
    fn from(local: LocalRegistry) -> Self {
        Registry::Local(local)
    }
}

#[cfg(feature = "http-registry")]
impl From<HttpRegistry> for Registry {
    fn from(http: HttpRegistry) -> Self {
        Registry::Http(http)
    }
}

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{action} schema registry file {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("schema registry file {} is corrupt: {reason}", path.display())]
    CorruptFile { path: PathBuf, reason: String },
    #[error("schema registry file {} has used every schema id", path.display())]
    IdsExhausted { path: PathBuf },
    #[error("schema id {id} is not registered")]
    SchemaNotFound { id: u32 },
    #[error("schema {id} from the registry is not a valid Avro schema: {source}")]
    InvalidSchema {
        id: u32,
        #[source]
        source: apache_avro::Error,
    },
    #[error("schema {id} is a {schema_type} schema, not Avro")]
    NotAvro { id: u32, schema_type: String },
    #[error("writing the schema as JSON: {0}")]
    SchemaJson(#[source] serde_json::Error),
    #[cfg(feature = "http-registry")]
    #[error("schema registry URL `{url}` is not usable: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The request did not get an HTTP response (connection, TLS, timeout). The message
    /// includes the whole cause chain, which is where the useful part is.
    #[cfg(feature = "http-registry")]
    #[error("schema registry request to {url} failed: {}", error_chain(cause))]
    Request { url: String, cause: reqwest::Error },
    /// The registry answered with an error in its own format.
    #[cfg(feature = "http-registry")]
    #[error("schema registry at {url} refused the request (HTTP {status}, error code {error_code}): {message}")]
    Rejected {
        url: String,
        status: u16,
        error_code: i64,
        message: String,
    },
    /// The response is not what the registry API defines (e.g. a proxy's error page).
    #[cfg(feature = "http-registry")]
    #[error("unexpected response from schema registry at {url} (HTTP {status}): {detail}")]
    UnexpectedResponse {
        url: String,
        status: u16,
        detail: String,
    },
}

impl RegistryError {
    /// Whether the same call may succeed later: the registry was unreachable or failed on
    /// its side. Callers retry these rather than treating the record as bad.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::File { .. } => true,
            #[cfg(feature = "http-registry")]
            RegistryError::Request { .. } => true,
            #[cfg(feature = "http-registry")]
            RegistryError::Rejected { status, .. }
            | RegistryError::UnexpectedResponse { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[cfg(feature = "http-registry")]
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The text a schema is registered and compared as: the JSON apache-avro writes for the parsed
/// schema, so formatting differences in `.avsc` files do not make a new version. (It keeps
/// record and enum docs, defaults and logical types; apache-avro 0.21 leaves out field docs.)
fn schema_text(schema: &Schema) -> Result<String, RegistryError> {
    serde_json::to_string(schema).map_err(RegistryError::SchemaJson)
}

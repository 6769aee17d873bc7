//! A client of the Confluent Schema Registry REST API (also served by Karapace, Redpanda and
//! Apicurio's compatibility endpoint).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apache_avro::Schema;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{RequestBuilder, Url};
use serde::{Deserialize, Serialize};

use super::{schema_text, RegistryError};

const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT_ANY_VERSION: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";
/// A registry that has not answered by then is treated as down; the caller retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an unexpected response body goes into an error message.
const BODY_EXCERPT_CHARS: usize = 200;

/// Registers schemas and fetches them by id over HTTP, caching both answers in memory (an id's
/// schema never changes in a registry, and neither does a subject's id for a given schema).
#[derive(Debug)]
pub struct HttpRegistry {
    base: Url,
    auth: Option<BasicAuth>,
    client: reqwest::Client,
    ids: Mutex<HashMap<String, HashMap<String, u32>>>,
    schemas: Mutex<HashMap<u32, Arc<Schema>>>,
}

struct BasicAuth {
    username: String,
    password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize)]
struct RegisterRequest<'a> {
    schema: &'a str,
}

#[derive(Deserialize)]
struct RegisterResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
    /// Absent for Avro, which is the registry's default type.
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error_code: i64,
    message: String,
}

impl HttpRegistry {
    /// A client of the registry at `base_url`, e.g. `http://schema-registry:8081`.
    /// Credentials written in the URL (`https://user:pass@host`) are used for basic auth and
    /// kept out of the URL, so they never appear in error messages.
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidUrl {
            url: redact_credentials(base_url),
            reason,
        };
        let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("expected an http:// or https:// URL".into()));
        }
        let auth = match (base.username(), base.password()) {
            ("", None) => None,
            (username, password) => Some(BasicAuth {
                username: username.to_owned(),
                password: password.unwrap_or_default().to_owned(),
            }),
        };
        // Cannot fail for an http(s) URL with a host, which was checked above.
        let _ = base.set_username("");
        let _ = base.set_password(None);

        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| invalid(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpRegistry {
            base,
            auth,
            client,
            ids: Mutex::default(),
            schemas: Mutex::default(),
        })
    }

    /// Sends HTTP basic auth with every request (replacing credentials given in the URL).
    pub fn with_basic_auth(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Some(BasicAuth {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// `POST {base}/subjects/{subject}/versions`: registers the schema (or finds it already
    /// registered) and returns its id.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let text = schema_text(schema)?;
        if let Some(id) = self.cached_id(subject, &text) {
            return Ok(id);
        }
        let url = self.url(&["subjects", subject, "versions"]);
        let body = serde_json::to_vec(&RegisterRequest { schema: &text })
            .map_err(RegistryError::SchemaJson)?;
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))
            .body(body);
        let response: RegisterResponse = self.call(request, &url).await?;
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(subject.to_owned())
            .or_default()
            .insert(text, response.id);
        Ok(response.id)
    }

    /// `GET {base}/schemas/ids/{id}`: the schema registered as `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self
            .schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(Arc::clone(schema));
        }
        let url = self.url(&["schemas", "ids", &id.to_string()]);
        let response: SchemaResponse = self.call(self.client.get(url.clone()), &url).await?;
        if let Some(schema_type) = response.schema_type.filter(|t| t != "AVRO") {
            return Err(RegistryError::NotAvro { id, schema_type });
        }
        let schema = Schema::parse_str(&response.schema)
            .map_err(|source| RegistryError::InvalidSchema { id, source })?;
        let schema = Arc::new(schema);
        self.schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    fn cached_id(&self, subject: &str, text: &str) -> Option<u32> {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.get(subject)?.get(text).copied()
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new(): an http(s) URL can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends the request and reads a JSON answer, or the registry's error.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: RequestBuilder,
        url: &Url,
    ) -> Result<T, RegistryError> {
        let request = match &self.auth {
            Some(auth) => request.basic_auth(&auth.username, Some(&auth.password)),
            None => request,
        };
        let failed = |cause: reqwest::Error| RegistryError::Request {
            url: url.to_string(),
            cause: cause.without_url(),
        };
        let response = request
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_ANY_VERSION))
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;

        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(error) => RegistryError::Rejected {
                    url: url.to_string(),
                    status: status.as_u16(),
                    error_code: error.error_code,
                    message: error.message,
                },
                Err(_) => RegistryError::UnexpectedResponse {
                    url: url.to_string(),
                    status: status.as_u16(),
                    detail: format!("body: {}", excerpt(&body)),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|e| RegistryError::UnexpectedResponse {
            url: url.to_string(),
            status: status.as_u16(),
            detail: format!("{e} in body: {}", excerpt(&body)),
        })
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    if text.chars().nth(BODY_EXCERPT_CHARS).is_some() {
        excerpt.push('…');
    }
    excerpt
}

/// `base_url` for an error message, without any password it contains.
fn redact_credentials(base_url: &str) -> String {
    match Url::parse(base_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(_) => base_url.to_owned(),
        // Unparseable: the password cannot be located reliably, so show only the scheme part.
        Err(_) => match base_url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://<redacted>"),
            _ => base_url.to_owned(),
        },
    }
}

//! A resident's Open311 GeoReport v2 client (a 12345 app, a WeChat mini-program), as
//! existing 311 apps talk to an endpoint: discover the services, read a service's
//! definition, post a form-encoded request with `api_key` and `attribute[code]` fields, and
//! follow the request by its id.

use std::time::Duration;

use serde_json::Value;

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

pub struct Open311Client {
    client: reqwest::Client,
    /// e.g. `http://127.0.0.1:8080/open311/v2`
    base: String,
    api_key: String,
}

impl std::fmt::Debug for Open311Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open311Client")
            .field("base", &self.base)
            .field("api_key", &"***")
            .finish()
    }
}

/// Percent-encode one form value (`application/x-www-form-urlencoded`).
pub fn form_encode(pairs: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Open311Client {
    pub fn new(base: impl Into<String>, api_key: impl Into<String>) -> Self {
        Open311Client {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
        }
    }

    async fn answer(response: reqwest::Response) -> Result<Answer, reqwest::Error> {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// `GET <base>/<path>` (e.g. `services.json`, `requests/123.xml?jurisdiction_id=x`).
    pub async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        let response = self
            .client
            .get(format!("{}/{}", self.base, path.trim_start_matches('/')))
            .send()
            .await?;
        Self::answer(response).await
    }

    /// `POST <base>/requests.<format>` with these fields, plus `api_key` first.
    pub async fn post_request(
        &self,
        format: &str,
        fields: &[(String, String)],
    ) -> Result<Answer, reqwest::Error> {
        let mut all = vec![("api_key".to_owned(), self.api_key.clone())];
        all.extend(fields.iter().cloned());
        self.post_raw(format, form_encode(&all)).await
    }

    /// Post an exact body (tests: a missing key, a malformed field).
    pub async fn post_raw(&self, format: &str, body: String) -> Result<Answer, reqwest::Error> {
        let response = self
            .client
            .post(format!("{}/requests.{format}", self.base))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await?;
        Self::answer(response).await
    }

    /// The fields a careful client sends for `service` (a `services.json` entry): every
    /// required attribute of its definition filled with a valid value.
    pub async fn required_attributes(
        &self,
        service_code: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let answer = self
            .get(&format!("services/{service_code}.json"))
            .await
            .map_err(|e| e.to_string())?;
        let definition = answer
            .json()
            .ok_or_else(|| format!("service definition of {service_code}: {}", answer.body))?;
        let mut fields = Vec::new();
        for a in definition["attributes"].as_array().into_iter().flatten() {
            if a["required"] != Value::Bool(true) {
                continue;
            }
            let code = a["code"].as_str().unwrap_or_default();
            let value = match a["datatype"].as_str().unwrap_or_default() {
                "singlevaluelist" | "multivaluelist" => a["values"][0]["key"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| a["values"][0]["key"].to_string()),
                "number" => "1".to_owned(),
                "datetime" => chrono::Utc::now().to_rfc3339(),
                _ => "见描述".to_owned(),
            };
            let key = if a["datatype"] == "multivaluelist" {
                format!("attribute[{code}][]")
            } else {
                format!("attribute[{code}]")
            };
            fields.push((key, value));
        }
        Ok(fields)
    }
}

//! The `hub` command line, one file per sub-command. `run` and `demo` start a hub; the others
//! read files (`rules check|test`, `bench`) or the store (`audit`, `rules
//! publish|rollback|versions`, `replay`) or are clients of a running hub's HTTP API
//! (`connectors`, `dlq`, `report`), which works the same with the embedded broker, whose
//! address only the hub knows.

pub mod audit;
pub mod bench;
#[cfg(feature = "demo")]
pub mod bench_indicators;
#[cfg(feature = "demo")]
pub mod bench_pipeline;
#[cfg(feature = "demo")]
pub mod bench_replay;
pub mod connectors;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dlq;
pub mod replay;
pub mod report;
pub mod rules;
pub mod run;

use anyhow::{bail, Context};

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("a plain HTTP client builds")
}

pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: is the hub running and is --api right?"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{what}: the answer is not JSON"))?;
    if !status.is_success() && body.get("connectors").is_none() {
        bail!(
            "{what}: HTTP {status}: {}",
            body.get("error").and_then(|e| e.as_str()).unwrap_or("")
        );
    }
    Ok(body)
}

pub(crate) fn authorized(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

pub(crate) fn query(pairs: &[(&str, Option<String>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

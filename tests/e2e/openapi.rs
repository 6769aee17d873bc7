//! The OpenAPI document the hub serves lists exactly the routes it serves, and an
//! independent validator (Python's `openapi-spec-validator`) accepts it as OpenAPI 3.1.

use std::collections::BTreeSet;
use std::sync::Arc;

use hub::startup::{self, Roles};
use hub_tests::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let mut config = hub_config(dir.path(), broker.bootstrap(), &url);
    // A webhook connector with a path of its own: the document must list it too.
    config
        .connectors
        .push(hub::config::ConnectorConfig::Webhook(
            hub::config::WebhookSourceConfig {
                name: "urban_management.push".into(),
                department: "urban_management".into(),
                rate_limit: None,
                path: Some("/webhooks/urban-management".into()),
                secret_env: "UM_SECRET".into(),
                previous_secret_env: None,
                tolerance_secs: 300,
                queue_capacity: 10,
                max_batch: 10,
                linger_ms: 20,
            },
        ));
    let hub = startup::start(
        &config,
        Roles::ALL,
        Arc::new(|var: &str| (var == "UM_SECRET").then(|| "s".to_owned())),
    )
    .await
    .expect("hub starts");
    let base = format!("http://{}", hub.api_addr.unwrap());
    let doc: Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    // The web console's pages are not part of the API.
    let served: BTreeSet<(String, String)> = hub
        .routes
        .iter()
        .filter(|r| !r.console)
        .map(|r| (r.method.as_str().to_owned(), r.path.clone()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}\ndocumented but not served: {unserved:?}"
    );
    assert!(served.contains(&("POST".into(), "/webhooks/urban-management".into())));

    // An independent validator.
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sys, json; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator (scripts/test installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    hub.stop().await;
    broker.stop().await;
}

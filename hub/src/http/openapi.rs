//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and their query types, served at `GET /api/v1/openapi.json`. A test checks
//! that it lists exactly the routes the hub serves.

use std::sync::Arc;

use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::{Guard, Route};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Civic integration hub",
        description = "Links a city's departmental systems (police, urban management, sanitation, \
                       civil affairs, residents) to its communities under the 1+2+X model. Every \
                       call under /api/ but pushes and this document needs a bearer token \
                       (accounts in config/access.toml); each account reads inside its scope."
    ),
    paths(
        super::health::healthz,
        super::health::metrics,
        super::tasks::list_tasks,
        super::tasks::get_task,
        super::tasks::list_returns,
        super::tasks::list_suppressions,
        super::tasks::dry_run,
        super::console::list,
        super::console::show,
        super::console::act,
        super::stream::stream,
        super::indicators::indicators,
        super::deadletters::list_handler,
        super::deadletters::replay_handler,
        super::audit::list_actions,
        super::rules::rules_versions,
        super::rules::replay_rules,
        super::rules::activate_rules,
        super::push::push_record,
        super::open311::get_resource,
        super::open311::post_resource,
        super::open311::get_service,
        super::open311::get_request,
        openapi_json,
    ),
    modifiers(&BearerToken),
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An account's token (config/access.toml)"))
                    .build(),
            ),
        );
    }
}

/// The document, with the own paths of this process's webhook connectors (configured per
/// connector, so not known to the annotations) described like the generic push route.
pub fn document(webhook_paths: &[String]) -> Document {
    let mut doc = ApiDoc::openapi();
    let generic = doc
        .paths
        .paths
        .get("/api/v1/connectors/{name}/records")
        .cloned();
    if let Some(item) = generic {
        for path in webhook_paths {
            let mut item = item.clone();
            if let Some(op) = item.post.as_mut() {
                // The connector is named by the path itself here.
                if let Some(params) = op.parameters.as_mut() {
                    params.retain(|p| p.name != "name");
                }
                op.operation_id = Some(format!("push_to {path}"));
            }
            doc.paths.paths.insert(path.clone(), item);
        }
    }
    doc
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub(crate) async fn openapi_json(
    axum::extract::State(doc): axum::extract::State<Arc<String>>,
) -> axum::response::Response {
    (
        [("content-type", "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`, open like health: a document of the API is no secret.
pub fn routes(doc: &Document) -> Vec<Route> {
    let text = Arc::new(doc.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialise");
        "{}".to_owned()
    }));
    vec![Route::new(
        Method::GET,
        "/api/v1/openapi.json",
        Guard::Open,
        get(openapi_json).with_state(text),
    )]
}

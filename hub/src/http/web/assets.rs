//! The console's files, embedded in the binary: nothing to install beside the hub and
//! nothing fetched from elsewhere. Vendored files keep their version in their path and their
//! licence beside them (`hub/assets/vendor/`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// (path under `/assets/`, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/map.js"),
    ),
    (
        "vendor/leaflet-1.9.4/leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/vendor/leaflet-1.9.4/leaflet.js"),
    ),
    (
        "vendor/leaflet-1.9.4/leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/vendor/leaflet-1.9.4/leaflet.css"),
    ),
    (
        "vendor/leaflet-1.9.4/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/vendor/leaflet-1.9.4/LICENSE"),
    ),
    (
        "vendor/htmx-2.0.4/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/vendor/htmx-2.0.4/htmx.min.js"),
    ),
    (
        "vendor/htmx-2.0.4/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/vendor/htmx-2.0.4/LICENSE"),
    ),
];

pub fn get(path: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, t, b)| (*t, *b))
}

pub async fn serve(Path(path): Path<String>) -> Response {
    match get(&path) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                // Versioned vendor paths never change; the console's own files change with
                // the hub, so they are revalidated.
                (
                    header::CACHE_CONTROL,
                    if path.starts_with("vendor/") {
                        "public, max-age=31536000, immutable"
                    } else {
                        "no-cache"
                    },
                ),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

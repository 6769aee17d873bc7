//! The civic integration hub: wires connectors, Kafka, the routing core, the task store and
//! the HTTP API into one process.
//!
//! Layers, each importing only those below it (a test checks it):
//!
//! | layer | holds |
//! | --- | --- |
//! | [`cli`], [`startup`] | the `hub` sub-commands; building and running a hub process |
//! | [`http`] | every route, sign-in, one error type, typed queries |
//! | [`pipeline`] | ingest, routing of events, outbox relay, live feed, dead letters, reload |
//! | [`cases`] | the case lifecycle service, the SLA tracker, indicator facts |
//! | [`infra`] | Kafka, the embedded broker, shutdown, supervision, telemetry |
//! | [`config`] | the hub's configuration file |
//! | [`context`] | accounts and scopes, health, the routing configuration in force, roles, secrets |
//!
//! Follow one event: [`pipeline::ingest`] (a departmental record becomes a civic event on a
//! feed topic) → [`pipeline::routing`] (the event is routed by `hub_router` and stored as a
//! task by `hub_store`) → [`http::tasks`] and [`http::console`] (consoles read the task, why
//! it went where it went, and act on it through [`cases::service`]).

pub mod cases;
pub mod cli;
pub mod config;
pub mod context;
pub mod http;
pub mod infra;
pub mod pipeline;
pub mod startup;

#[cfg(test)]
mod layer_rule {
    //! The layer rule of this crate, checked on its source: a module imports only modules of
    //! its own layer or of layers below it.

    use std::path::Path;

    /// Bottom first.
    const LAYERS: [&str; 8] = [
        "context", "config", "infra", "cases", "pipeline", "http", "startup", "cli",
    ];

    fn rank(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| *l == module)
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_imports_a_layer_above_its_own() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut violations = Vec::new();
        for file in all {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let Some(own) = rank(&top) else {
                continue; // lib.rs, main.rs
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue; // documentation may point up; code may not
                }
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    // `crate::a::..` or `crate::{a, b::c}`.
                    let named: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split(['}', ','])
                            .map(|m| m.trim().split("::").next().unwrap_or_default())
                            .collect(),
                        None => vec![rest],
                    };
                    for name in named {
                        let module: String = name
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if rank(&module).is_some_and(|r| r > own) {
                            violations.push(format!(
                                "{}:{}: {top} imports {module}",
                                rel.display(),
                                n + 1
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            violations.is_empty(),
            "the layer rule ({}) is broken:\n{}",
            LAYERS.join(" < "),
            violations.join("\n")
        );
    }
}

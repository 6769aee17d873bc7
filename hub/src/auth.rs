//! Who is calling the API and what they may see: bearer tokens from `config/access.toml`.
//!
//! Each account has a role and a scope:
//! * `community` — its community's tasks only;
//! * `street` — the tasks of its street's communities;
//! * `department` — tasks its department originated, or that one of its units (police
//!   stations, urban management squads, ...) leads or co-handles;
//! * `administrator` — everything, including the routing dry-run and rules endpoints.
//!
//! A token is read from the environment variable the account names (`token_env`); the
//! account's `demo_token` is accepted only when `HUB_ACCESS_DEMO_TOKENS` is `1` (as `hub demo`
//! sets it). A token shared by two accounts is refused for both. Every call under `/api/`
//! needs a token (401 without a valid one); a call outside the account's scope gets 403 and
//! changes nothing. `/healthz` and `/metrics` stay open.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_router::city::City;
use hub_router::task::Task;
use hub_router::workflow::lifecycle::Action;
use hub_schemas::event::Department;
use hub_store::{Involvement, TaskFilter, TaskStore};
use serde::Deserialize;
use serde_json::json;

use crate::app::Secrets;

/// The access file inside the routing configuration folder.
pub const ACCESS_FILE: &str = "access.toml";
/// Set to `1` to accept the accounts' demo tokens.
pub const DEMO_TOKENS_VAR: &str = "HUB_ACCESS_DEMO_TOKENS";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    #[serde(default)]
    accounts: Vec<AccountConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub community: Option<String>,
    #[serde(default)]
    pub street: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    /// The unit the account acts for (recorded as the actor's unit).
    #[serde(default)]
    pub unit: Option<String>,
    pub token_env: String,
    #[serde(default)]
    pub demo_token: Option<String>,
}

/// What an account may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Administrator,
    Community(String),
    Street {
        code: String,
        communities: Vec<String>,
    },
    Department {
        department: Department,
        unit_roles: Vec<String>,
    },
}

/// The caller, as the handlers see it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub unit: Option<String>,
    pub scope: Scope,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Administrator
    }

    pub fn may_see(&self, task: &Task) -> bool {
        let f = &task.fields;
        match &self.scope {
            Scope::Administrator => true,
            Scope::Community(c) => f.place.community_code.as_deref() == Some(c),
            Scope::Street { code, .. } => f.place.street_code.as_deref() == Some(code),
            Scope::Department {
                department,
                unit_roles,
            } => {
                f.department == *department
                    || f.lead_unit
                        .iter()
                        .chain(f.co_handlers.iter())
                        .any(|u| unit_roles.contains(&u.role))
            }
        }
    }

    /// Whether the account may take `action` on a task it may see: arbitration of a return
    /// and extension decisions belong to the level above (street, administrator).
    pub fn may_act(&self, task: &Task, action: &Action) -> bool {
        if !self.may_see(task) {
            return false;
        }
        let above = matches!(self.scope, Scope::Administrator | Scope::Street { .. });
        match action {
            Action::Arbitrate { .. }
            | Action::ApproveExtension { .. }
            | Action::RefuseExtension
            | Action::Escalate { .. } => above,
            // The community (or the level above) blows the whistle; departments report in.
            Action::ConveneJointMeeting { .. } => !matches!(self.scope, Scope::Department { .. }),
            _ => true,
        }
    }

    /// Narrows a task filter to the account's scope; false when the filter asks for
    /// something outside it.
    pub fn narrow(&self, filter: &mut TaskFilter) -> bool {
        match &self.scope {
            Scope::Administrator => true,
            Scope::Community(c) => {
                if filter.community_code.as_ref().is_some_and(|x| x != c) {
                    return false;
                }
                filter.community_code = Some(c.clone());
                true
            }
            Scope::Street { code, communities } => {
                if filter.street_code.as_ref().is_some_and(|x| x != code)
                    || filter
                        .community_code
                        .as_ref()
                        .is_some_and(|x| !communities.contains(x))
                {
                    return false;
                }
                filter.street_code = Some(code.clone());
                true
            }
            Scope::Department {
                department,
                unit_roles,
            } => {
                filter.involving = Some(Involvement {
                    department: *department,
                    unit_roles: unit_roles.clone(),
                });
                true
            }
        }
    }
}

/// The accounts, by token.
pub struct Access {
    by_token: HashMap<String, Identity>,
    pub accounts: Vec<AccountConfig>,
}

impl Access {
    /// Loads `<routing dir>/access.toml`, resolving scopes against the city and tokens through
    /// `secrets`.
    pub fn load(routing_dir: &Path, city: &City, secrets: &Secrets) -> anyhow::Result<Access> {
        let path = routing_dir.join(ACCESS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), city, secrets)
    }

    pub fn parse(text: &str, file: &str, city: &City, secrets: &Secrets) -> anyhow::Result<Access> {
        let parsed: AccessFile = toml::from_str(text).with_context(|| format!("parsing {file}"))?;
        let demo = secrets(DEMO_TOKENS_VAR).is_some_and(|v| v == "1" || v == "true");
        let mut by_token: HashMap<String, Identity> = HashMap::new();
        let mut shared: Vec<String> = Vec::new();
        for a in &parsed.accounts {
            let scope = scope_of(a, city).with_context(|| format!("{file}: account {}", a.name))?;
            let identity = Identity {
                name: a.name.clone(),
                unit: a.unit.clone(),
                scope,
            };
            let token = secrets(&a.token_env)
                .filter(|t| !t.trim().is_empty())
                .or_else(|| a.demo_token.clone().filter(|_| demo));
            let Some(token) = token else { continue };
            if by_token.insert(token.clone(), identity).is_some() {
                shared.push(token);
            }
        }
        for token in shared {
            by_token.remove(&token);
            tracing::error!("{file}: two accounts have the same token; it is refused for both");
        }
        Ok(Access {
            by_token,
            accounts: parsed.accounts,
        })
    }

    pub fn identify(&self, token: &str) -> Option<&Identity> {
        self.by_token.get(token)
    }
}

fn scope_of(a: &AccountConfig, city: &City) -> anyhow::Result<Scope> {
    Ok(match a.role.as_str() {
        "administrator" => Scope::Administrator,
        "community" => {
            let code = a
                .community
                .clone()
                .context("a community account names its `community`")?;
            city.community(&code)
                .with_context(|| format!("community {code} is not in the city model"))?;
            Scope::Community(code)
        }
        "street" => {
            let code = a
                .street
                .clone()
                .context("a street account names its `street`")?;
            let street = city
                .street(&code)
                .with_context(|| format!("street {code} is not in the city model"))?;
            Scope::Street {
                communities: street.community_codes().to_vec(),
                code,
            }
        }
        "department" => {
            let name = a
                .department
                .clone()
                .context("a department account names its `department`")?;
            let department =
                Department::parse(&name).with_context(|| format!("unknown department `{name}`"))?;
            let mut unit_roles: Vec<String> = city
                .communities()
                .iter()
                .flat_map(|c| c.units())
                .chain(city.streets().iter().flat_map(|s| s.units()))
                .filter(|u| u.department == Some(department))
                .map(|u| u.role.as_str().to_owned())
                .collect();
            unit_roles.sort();
            unit_roles.dedup();
            Scope::Department {
                department,
                unit_roles,
            }
        }
        other => anyhow::bail!(
            "role `{other}` is not one of administrator, community, street, department"
        ),
    })
}

#[derive(Clone)]
pub struct AuthState {
    pub access: Arc<Access>,
    pub store: Arc<dyn TaskStore>,
}

fn deny(code: StatusCode, message: String) -> Response {
    let mut r = (code, Json(json!({ "error": message }))).into_response();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"hub\""),
        );
    }
    r
}

/// The middleware: authenticates every call under `/api/`, attaches the [`Identity`], keeps
/// administrator-only endpoints for administrators, narrows `/api/v1/tasks` listings to the
/// account's scope and refuses a task outside it.
pub async fn authorize(State(s): State<AuthState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(who) = token.and_then(|t| s.access.identify(t)).cloned() else {
        return deny(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer <token>, accounts in config/access.toml)"
                .to_owned(),
        );
    };
    // Dead letters carry whole departmental records (masked when listed, replayable).
    let admin_only = path.starts_with("/api/v1/route")
        || path.starts_with("/api/v1/rules")
        || path.starts_with("/api/v1/deadletters");
    if admin_only && !who.is_admin() {
        return deny(
            StatusCode::FORBIDDEN,
            format!("{path} is for administrators; {} is not one", who.name),
        );
    }
    if path == "/api/v1/returns" {
        let query = req.uri().query().unwrap_or("");
        let ok = match &who.scope {
            Scope::Administrator => true,
            Scope::Department { department, .. } => {
                query_value(query, "department").as_deref() == Some(department.as_str())
            }
            _ => false,
        };
        if !ok {
            return deny(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may read only its own department's returns (department=...)",
                    who.name
                ),
            );
        }
    }
    if path == "/api/v1/tasks" && !who.is_admin() {
        // Rewrite the listing's query to the account's scope.
        let query = req.uri().query().unwrap_or("").to_owned();
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str, pairs: &[(String, String)]| {
            pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let (key, value, ok) = match &who.scope {
            Scope::Community(c) => (
                "community",
                c.clone(),
                get("community", &pairs).is_none_or(|x| &x == c),
            ),
            Scope::Street { code, communities } => (
                "street",
                code.clone(),
                get("street", &pairs).is_none_or(|x| &x == code)
                    && get("community", &pairs).is_none_or(|x| communities.contains(&x)),
            ),
            Scope::Department { department, .. } => (
                "department",
                department.as_str().to_owned(),
                get("department", &pairs).is_none_or(|x| x == department.as_str()),
            ),
            Scope::Administrator => unreachable!("administrators are not narrowed"),
        };
        if !ok {
            return deny(
                StatusCode::FORBIDDEN,
                format!("{} may not list tasks outside its scope", who.name),
            );
        }
        pairs.retain(|(n, _)| n != key);
        pairs.push((key.to_owned(), value));
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let Ok(uri) = format!("{path}?{q}").parse() else {
            return deny(StatusCode::BAD_REQUEST, "malformed query".to_owned());
        };
        *req.uri_mut() = uri;
    } else if let Some(rest) = path.strip_prefix("/api/v1/tasks/") {
        let id = rest.split('/').next().unwrap_or_default();
        match s.store.get_task(id).await {
            Ok(Some(task)) if !who.may_see(&task) => {
                return deny(
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} may not see or act on task {id} (outside its scope)",
                        who.name
                    ),
                )
            }
            Ok(_) => {}
            Err(e) => {
                return deny(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("task store unavailable: {e}"),
                )
            }
        }
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Wraps API routes with [`authorize`].
pub fn protect(routes: axum::Router, state: AuthState) -> axum::Router {
    routes.layer(axum::middleware::from_fn_with_state(state, authorize))
}

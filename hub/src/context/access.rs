//! Who may call the API and what they may see and do: the accounts of `access.toml`.
//!
//! Each account has a role and a scope:
//! * `community` — its community's tasks only;
//! * `street` — the tasks of its street's communities; the level above the community
//!   (arbitrates returns, decides extensions, escalates);
//! * `department` — tasks its department originated, or that one of its units (police
//!   stations, urban management squads, ...) leads or co-handles;
//! * `administrator` — everything, including the routing dry-run and rules endpoints.
//!
//! Which lifecycle action a role may take is [`Identity::may_act`] (the action matrix). A
//! token is read from the environment variable the account names (`token_env`); the
//! account's `demo_token` is accepted only when `HUB_ACCESS_DEMO_TOKENS` is `1` (as `hub
//! demo` sets it). A token shared by two accounts is refused for both. Only the tokens'
//! SHA-256 digests are kept, compared in constant time. The file is reloaded with the
//! routing configuration ([`AccessState::reload`]); a broken file is refused and the accounts
//! before it stay.
//!
//! Nothing here knows HTTP: `crate::http` turns a request into an [`Identity`] and asks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hub_cases::lifecycle::Action;
use hub_connectors::{digests_equal, token_digest};
use hub_router::city::{City, UnitRole};
use hub_router::task::Task;
use hub_schemas::event::Department;
use hub_store::{Involvement, TaskFilter};
use serde::Deserialize;

use crate::context::Secrets;

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
        unit_roles: Vec<UnitRole>,
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

    /// The account's role as `access.toml` names it.
    pub fn role_name(&self) -> &'static str {
        match self.scope {
            Scope::Administrator => "administrator",
            Scope::Community(_) => "community",
            Scope::Street { .. } => "street",
            Scope::Department { .. } => "department",
        }
    }

    /// A departmental system's account (it takes its own work, it does not dispatch).
    pub fn is_department(&self) -> bool {
        matches!(self.scope, Scope::Department { .. })
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

    /// The action matrix: whether the account may take `action` on `task`.
    ///
    /// | action | administrator | street | community | department |
    /// | --- | --- | --- | --- | --- |
    /// | sign for, start, stage, feedback, return, request extension, wait on / hear from the resident | ✓ | ✓ | ✓ | when one of its units leads |
    /// | dispatch, cancel, verify, rework, close, callback (回访) | ✓ | ✓ | ✓ | — |
    /// | arbitrate, approve / refuse extension, escalate | ✓ | ✓ | — | — |
    /// | convene the joint meeting (吹哨) | ✓ | ✓ | ✓ | — |
    /// | report in, complete a part (joint case) | any unit | any unit | its own unit | its own department's units |
    ///
    /// Checking one's own work is not allowed: an account whose unit leads the task may not
    /// verify, rework, close or record the callback on it. Every action also needs the task
    /// to be in scope ([`Identity::may_see`]). `role_of` gives a unit's role (for joint-case
    /// parts of units the task does not list).
    pub fn may_act(
        &self,
        task: &Task,
        action: &Action,
        role_of: &dyn Fn(&str) -> Option<UnitRole>,
    ) -> bool {
        if !self.may_see(task) {
            return false;
        }
        let f = &task.fields;
        let lead = f.lead_unit.as_ref();
        let own_work = self
            .unit
            .as_ref()
            .is_some_and(|u| lead.is_some_and(|l| &l.unit_id == u));
        let above = matches!(self.scope, Scope::Administrator | Scope::Street { .. });
        let department_units = match &self.scope {
            Scope::Department { unit_roles, .. } => Some(unit_roles),
            _ => None,
        };
        let department_leads =
            department_units.is_some_and(|roles| lead.is_some_and(|l| roles.contains(&l.role)));
        match action {
            Action::SignFor
            | Action::Start
            | Action::ReportStage { .. }
            | Action::Resolve { .. }
            | Action::Return { .. }
            | Action::RequestExtension { .. }
            | Action::AwaitResident
            | Action::ResidentResponded => department_units.is_none() || department_leads,
            Action::Verify | Action::Rework { .. } | Action::Close | Action::Callback { .. } => {
                department_units.is_none() && !own_work
            }
            Action::Dispatch { .. }
            | Action::Cancel { .. }
            | Action::ConveneJointMeeting { .. } => department_units.is_none(),
            Action::Arbitrate { .. }
            | Action::ApproveExtension { .. }
            | Action::RefuseExtension
            | Action::Escalate { .. } => above,
            // The hub's own, when a rules version is activated with it: never an account's.
            Action::Reroute { .. } => false,
            Action::ReportIn { unit } | Action::CompletePart { unit } => {
                if above {
                    return true;
                }
                match department_units {
                    Some(roles) => {
                        let role = f
                            .lead_unit
                            .iter()
                            .chain(f.co_handlers.iter())
                            .find(|a| &a.unit_id == unit)
                            .map(|a| a.role)
                            .or_else(|| role_of(unit));
                        role.is_some_and(|r| roles.contains(&r))
                    }
                    None => self.unit.as_ref() == Some(unit),
                }
            }
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

/// The accounts with a usable token: the token's digest and who it is.
pub struct Access {
    by_digest: Vec<([u8; 32], Identity)>,
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
        let mut by_token: HashMap<[u8; 32], Identity> = HashMap::new();
        let mut shared: Vec<[u8; 32]> = Vec::new();
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
            let digest = token_digest(token.trim());
            if by_token.insert(digest, identity).is_some() {
                shared.push(digest);
            }
        }
        for digest in shared {
            by_token.remove(&digest);
            tracing::error!("{file}: two accounts have the same token; it is refused for both");
        }
        Ok(Access {
            by_digest: by_token.into_iter().collect(),
            accounts: parsed.accounts,
        })
    }

    /// An account with a usable token, by name, with its token's digest (a console session
    /// is bound to it, so a changed token ends the sessions opened with the old one).
    pub fn by_name(&self, name: &str) -> Option<(&[u8; 32], &Identity)> {
        self.by_digest
            .iter()
            .find(|(_, identity)| identity.name == name)
            .map(|(digest, identity)| (digest, identity))
    }

    /// The digest of a presented token and its account, if it has one; see [`Self::identify`].
    pub fn identify_with_digest(&self, token: &str) -> Option<([u8; 32], &Identity)> {
        let presented = token_digest(token.trim());
        self.identify(token).map(|identity| (presented, identity))
    }

    /// The account a presented token belongs to. Every account's digest is compared, in
    /// constant time, whichever matches.
    pub fn identify(&self, token: &str) -> Option<&Identity> {
        let presented = token_digest(token.trim());
        let mut found = None;
        for (digest, identity) in &self.by_digest {
            if digests_equal(digest, &presented) {
                found = Some(identity);
            }
        }
        found
    }
}

/// The accounts in force, reloaded with the routing configuration.
pub struct AccessState {
    dir: PathBuf,
    secrets: Secrets,
    current: RwLock<Arc<Access>>,
    pub throttle: LoginThrottle,
}

impl AccessState {
    pub fn load(routing_dir: &Path, city: &City, secrets: Secrets) -> anyhow::Result<Self> {
        let access = Access::load(routing_dir, city, &secrets)?;
        Ok(AccessState {
            dir: routing_dir.to_owned(),
            secrets,
            current: RwLock::new(Arc::new(access)),
            throttle: LoginThrottle::default(),
        })
    }

    pub fn current(&self) -> Arc<Access> {
        self.current.read().expect("access lock").clone()
    }

    /// Reads the file again against `city`; a broken file is refused (the error says why)
    /// and the accounts in force stay.
    pub fn reload(&self, city: &City) -> anyhow::Result<()> {
        let access = Access::load(&self.dir, city, &self.secrets)?;
        *self.current.write().expect("access lock") = Arc::new(access);
        Ok(())
    }
}

/// Failed sign-ins per client address: after [`LoginThrottle::MAX_FAILURES`] within
/// [`LoginThrottle::WINDOW`], the address is refused (429) until the window has passed,
/// whatever it presents, so tokens cannot be guessed at speed.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginThrottle {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Addresses remembered at most (the oldest entries go first when full).
    const CAPACITY: usize = 10_000;

    /// How long `ip` must wait before trying again, if it is throttled now.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("throttle lock");
        let (since, n) = failures.get(&ip)?;
        let age = now.saturating_duration_since(*since);
        (*n >= Self::MAX_FAILURES && age < Self::WINDOW).then(|| Self::WINDOW - age)
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() >= Self::CAPACITY {
            failures.retain(|_, (since, _)| now.saturating_duration_since(*since) < Self::WINDOW);
            if failures.len() >= Self::CAPACITY {
                failures.clear();
            }
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= Self::WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().expect("throttle lock").remove(&ip);
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
            let mut unit_roles: Vec<UnitRole> = city
                .communities()
                .iter()
                .flat_map(|c| c.units())
                .chain(city.streets().iter().flat_map(|s| s.units()))
                .filter(|u| u.department == Some(department))
                .map(|u| u.role)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_blocks_an_address_for_the_window_after_ten_failures() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "10.1.2.4".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..LoginThrottle::MAX_FAILURES - 1 {
            t.failed(ip, t0);
        }
        assert_eq!(
            t.blocked(ip, t0),
            None,
            "nine failures are not yet throttled"
        );
        t.failed(ip, t0);
        let wait = t.blocked(ip, t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(wait, Duration::from_secs(40));
        assert_eq!(t.blocked(other, t0), None, "per address");
        assert_eq!(
            t.blocked(ip, t0 + LoginThrottle::WINDOW),
            None,
            "the window ends"
        );
        // After the window the count starts again.
        t.failed(ip, t0 + LoginThrottle::WINDOW);
        assert_eq!(t.blocked(ip, t0 + LoginThrottle::WINDOW), None);
    }

    #[test]
    fn tokens_are_kept_as_digests_and_found_whichever_account_matches() {
        let city_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let router = crate::context::routing::load(&city_dir).unwrap().router;
        let secrets: Secrets = Arc::new(|name: &str| match name {
            "HUB_TOKEN_ADMIN" => Some("s3cret-admin".into()),
            "HUB_TOKEN_POLICE" => Some("s3cret-police".into()),
            _ => None,
        });
        let access = Access::load(&city_dir, router.config().city(), &secrets).unwrap();
        assert_eq!(access.identify("s3cret-admin").unwrap().name, "admin");
        assert_eq!(access.identify(" s3cret-police ").unwrap().name, "police");
        assert!(access.identify("s3cret-admin2").is_none());
        assert!(access.identify("").is_none());
        // Demo tokens are off unless asked for.
        assert!(access.identify("demo-admin").is_none());
    }
}

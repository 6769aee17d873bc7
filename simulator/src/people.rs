//! The people of the demo: street and community dispatchers working their queues through the
//! hub's API, as they would through the console — signing for, handling, checking, closing,
//! now and then returning a case, asking for more time, sending work back or calling the
//! joint meeting (吹哨报到) — so that every page and the figures show a district at work, not
//! a pile of untouched tasks.
//!
//! Each case is handled by the account whose scope holds it: its community's account where
//! one exists (acting for the workstation), else its street's desk, else the administrator.
//! Checks (核查), closing, arbitration and extensions are the street's (or the
//! administrator's). Some cases are left alone, so the SLA tracker has something to warn
//! about.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Demo tokens of `config/access.toml` by scope code; the administrator's for the rest.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub admin: String,
    /// Community code → token.
    pub communities: BTreeMap<String, String>,
    /// Street code → token.
    pub streets: BTreeMap<String, String>,
}

impl Accounts {
    /// The demo accounts shipped in `config/access.toml`.
    pub fn demo() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Accounts {
            admin: "demo-admin".to_owned(),
            communities: map(&[
                ("510504001001", "demo-community-510504001001"),
                ("510504001002", "demo-community-510504001002"),
            ]),
            streets: map(&[
                ("510504001", "demo-street-510504001"),
                ("510504002", "demo-street-510504002"),
            ]),
        }
    }

    fn handler(&self, task: &Value) -> &str {
        let community = task["community_code"].as_str().unwrap_or("");
        self.communities
            .get(community)
            .or_else(|| self.streets.get(task["street_code"].as_str().unwrap_or("")))
            .unwrap_or(&self.admin)
    }

    fn street(&self, task: &Value) -> &str {
        self.streets
            .get(task["street_code"].as_str().unwrap_or(""))
            .unwrap_or(&self.admin)
    }
}

/// What the dispatchers did, and the joint meetings they called (task id → step).
#[derive(Debug, Default, Clone)]
struct Done {
    actions: u64,
    refused: u64,
    joint: BTreeMap<String, JointStep>,
}

/// Where a joint meeting the street called stands (吹哨 → 报到 → 完成分工).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JointStep {
    Convened,
    LeadReportedIn,
    AllReportedIn,
    Done,
}

/// The joint meeting's next step on a case the street called one for, if any: the community's
/// workstation leads, its property company co-handles; the property company is represented
/// by the administrator's account (it has none of its own in the demo) and is sometimes
/// slow to report in.
fn joint_step<'a>(
    step: JointStep,
    task: &Value,
    accounts: &'a Accounts,
    rng: &mut SmallRng,
) -> Option<(&'a str, Value, JointStep)> {
    let community = task["community_code"].as_str()?;
    let (handler, admin) = (accounts.handler(task), accounts.admin.as_str());
    match step {
        JointStep::Convened => Some((
            handler,
            json!({"action": "report_in", "unit": format!("{community}.workstation")}),
            JointStep::LeadReportedIn,
        )),
        JointStep::LeadReportedIn if rng.random::<f64>() < 0.5 => None,
        JointStep::LeadReportedIn => Some((
            admin,
            json!({"action": "report_in", "unit": format!("{community}.property_company")}),
            JointStep::AllReportedIn,
        )),
        JointStep::AllReportedIn => Some((
            handler,
            json!({"action": "complete_part", "unit": format!("{community}.workstation")}),
            JointStep::Done,
        )),
        JointStep::Done => None,
    }
}

/// The street calls a joint meeting (吹哨) on a case of a community with an account.
fn convene(task: &Value, accounts: &Accounts) -> Option<Value> {
    let community = task["community_code"].as_str()?;
    accounts.communities.get(community)?;
    Some(json!({
        "action": "convene_joint_meeting",
        "lead": {"unit": format!("{community}.workstation"), "part": "牵头协调，现场处置"},
        "co_handlers": [
            {"unit": format!("{community}.property_company"), "part": "清理现场，通知业主", "limit": "2 minutes"}
        ],
        "note": "涉及多方，召集联席会议"
    }))
}

/// Works the open cases every `every`, one step per case at most per round, until the task
/// is dropped.
pub fn start(
    api: String,
    accounts: Accounts,
    every: Duration,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut done = Done::default();
        for n in 1u64.. {
            tokio::time::sleep(every).await;
            round(&client, &api, &accounts, &mut rng, &mut done).await;
            if n % 20 == 0 {
                tracing::info!(
                    actions = done.actions,
                    refused = done.refused,
                    "simulated dispatchers at work"
                );
            }
        }
    })
}

async fn open_tasks(client: &reqwest::Client, api: &str, token: &str) -> Vec<Value> {
    let url = format!("{api}/api/v1/console/tasks?limit=200");
    let Ok(resp) = client.get(url).bearer_auth(token).send().await else {
        return Vec::new();
    };
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["tasks"].as_array().cloned().unwrap_or_default()
}

async fn act(client: &reqwest::Client, api: &str, token: &str, id: &str, body: Value) -> bool {
    let url = format!("{api}/api/v1/tasks/{id}/actions");
    matches!(
        client.post(url).bearer_auth(token).json(&body).send().await,
        Ok(r) if r.status().is_success()
    )
}

/// The next steps people take on a case in `status` this round, and by whom.
fn next_steps<'a>(
    status: &str,
    task: &Value,
    accounts: &'a Accounts,
    rng: &mut SmallRng,
) -> Vec<(&'a str, Value)> {
    next_step(status, task, accounts, rng)
        .map(|(token, body)| {
            let asked = body["action"] == "request_extension";
            let mut steps = vec![(token, body)];
            // The street decides an extension when it is asked.
            if asked {
                steps.push((
                    accounts.street(task),
                    json!({"action": "approve_extension"}),
                ));
            }
            steps
        })
        .unwrap_or_default()
}

fn next_step<'a>(
    status: &str,
    task: &Value,
    accounts: &'a Accounts,
    rng: &mut SmallRng,
) -> Option<(&'a str, Value)> {
    let roll: f64 = rng.random();
    let handler = accounts.handler(task);
    let street = accounts.street(task);
    let workstation = task["community_code"]
        .as_str()
        .map(|c| format!("{c}.workstation"));
    match status {
        // A share is left waiting, so warnings and breaches show up.
        "dispatched" if roll < 0.15 => None,
        "dispatched" if roll < 0.20 => Some((
            handler,
            json!({"action": "return", "reason": "not_our_remit", "note": "非本单位职责，请街道另行派遣"}),
        )),
        "dispatched" => Some((handler, json!({"action": "sign_for"}))),
        "signed_for" => Some((handler, json!({"action": "start"}))),
        "in_progress" if roll < 0.1 => Some((
            handler,
            json!({"action": "request_extension", "by": "2 working_days", "note": "需协调产权单位"}),
        )),
        "in_progress" if roll < 0.6 => Some((
            handler,
            json!({"action": "resolve", "feedback": "已到现场处置完毕，附现场照片"}),
        )),
        "in_progress" => None,
        "resolved" if roll < 0.1 => Some((
            street,
            json!({"action": "rework", "finding": "复查发现问题仍在，请返工"}),
        )),
        "resolved" => Some((street, json!({"action": "verify"}))),
        "verified" => Some((street, json!({"action": "close"}))),
        // 回访: now and then the resident is called back.
        "closed" if roll < 0.03 => Some((
            street,
            json!({"action": "callback", "satisfied": rng.random::<f64>() < 0.85}),
        )),
        "returned" => {
            workstation.map(|unit| (street, json!({"action": "arbitrate", "unit": unit})))
        }
        _ => None,
    }
}

async fn round(
    client: &reqwest::Client,
    api: &str,
    accounts: &Accounts,
    rng: &mut SmallRng,
    done: &mut Done,
) {
    for task in open_tasks(client, api, &accounts.admin).await {
        let (Some(id), Some(status)) = (task["task_id"].as_str(), task["status"].as_str()) else {
            continue;
        };
        // People do not touch every case every few seconds.
        if rng.random::<f64>() < 0.6 {
            continue;
        }
        // A case before the joint meeting moves on there first.
        if let Some(step) = done.joint.get(id).copied() {
            if let Some((token, body, next)) = joint_step(step, &task, accounts, rng) {
                if act(client, api, token, id, body).await {
                    done.actions += 1;
                    if next == JointStep::Done {
                        done.joint.remove(id);
                    } else {
                        done.joint.insert(id.to_owned(), next);
                    }
                } else {
                    done.refused += 1;
                    done.joint.remove(id);
                }
                continue;
            }
        } else if status == "signed_for" && rng.random::<f64>() < 0.08 {
            if let Some(body) = convene(&task, accounts) {
                if act(client, api, accounts.street(&task), id, body).await {
                    done.actions += 1;
                    done.joint.insert(id.to_owned(), JointStep::Convened);
                    continue;
                }
                done.refused += 1;
            }
        }
        for (token, body) in next_steps(status, &task, accounts, rng) {
            if act(client, api, token, id, body).await {
                done.actions += 1;
            } else {
                done.refused += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_its_person() {
        let accounts = Accounts::demo();
        let task = json!({"community_code": "510504001001", "street_code": "510504001"});
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..50 {
            if let Some((token, body)) = next_step("dispatched", &task, &accounts, &mut rng) {
                assert_eq!(token, "demo-community-510504001001");
                assert!(["sign_for", "return"].contains(&body["action"].as_str().unwrap()));
            }
            let (token, _) = next_step("resolved", &task, &accounts, &mut rng).unwrap();
            assert_eq!(token, "demo-street-510504001");
        }
        let elsewhere = json!({"community_code": "510504003001", "street_code": "510504003"});
        let (token, _) = next_step("signed_for", &elsewhere, &accounts, &mut rng).unwrap();
        assert_eq!(token, "demo-admin");
    }
}

//! Rules versions: stored once by digest, activated and rolled back in order, and chained so
//! that an edit or a deletion in the database is named by `verify_history`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use hub_router::bundle::Bundle;
use hub_store::{Activating, Place, RulesVersion};

use crate::audit::tamper;
use crate::backends::TestDb;

store_suite!(
    versions_are_stored_once_and_the_last_activation_routes,
    an_edited_or_deleted_version_or_activation_is_named,
    checkpoints_record_the_rules_chains_heads_so_a_cut_chain_shows,
);

/// The last activation deleted leaves a chain that holds on its own; the checkpoint that
/// recorded its head says it is gone. A checkpoint records a rules chain's head once.
async fn checkpoints_record_the_rules_chains_heads_so_a_cut_chain_shows(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    for (i, rules) in ["a = 1\n", "a = 2\n"].into_iter().enumerate() {
        let at = t0 + TimeDelta::minutes(i as i64);
        store
            .publish_rules(&version(rules, "王", at), &activating("publish", at))
            .await
            .unwrap();
    }
    let one = store.checkpoint_history(None, t0).await.unwrap().unwrap();
    assert_eq!(one.heads, 2, "both chains' heads");
    assert!(
        store.checkpoint_history(None, t0).await.unwrap().is_none(),
        "nothing moved since"
    );
    let rolled = t0 + TimeDelta::minutes(5);
    let v1 = version("a = 1\n", "王", t0).version;
    store
        .activate_rules(&v1, &activating("rollback", rolled))
        .await
        .unwrap()
        .unwrap();
    let two = store
        .checkpoint_history(None, rolled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(two.heads, 1, "only the activations moved");
    assert!(store.verify_history(None, None).await.unwrap().is_clean());

    // The rollback removed without a trace in its own chain: seq 1 and 2 still follow.
    tamper(db, "DELETE FROM rules_activations WHERE seq = 3").await;
    let broken = broken_links(&*store).await;
    assert_eq!(
        broken,
        [(
            Place::RulesActivation { seq: 3 },
            "the entry checkpoint 2 recorded is gone".to_owned()
        )]
    );
}

fn version(rules: &str, author: &str, at: DateTime<Utc>) -> RulesVersion {
    let files = BTreeMap::from([
        ("rules/10-police.toml".to_owned(), rules.to_owned()),
        ("sla/policies.toml".to_owned(), "[x]\n".to_owned()),
    ]);
    let bundle = Bundle::from_files(files.clone()).unwrap();
    RulesVersion {
        seq: 0,
        version: bundle.digest(),
        author: author.into(),
        at,
        message: format!("{author}'s change"),
        diff: "+a line\n".into(),
        files,
    }
}

/// What `hub audit verify` names: each broken link's place and reason.
async fn broken_links(store: &dyn hub_store::TaskStore) -> Vec<(Place, String)> {
    let report = store.verify_history(None, None).await.unwrap();
    report
        .broken
        .into_iter()
        .map(|b| (b.at, b.reason))
        .collect()
}

fn activating(action: &str, at: DateTime<Utc>) -> Activating {
    Activating {
        action: action.into(),
        author: "管理员".into(),
        at,
        message: "因为".into(),
    }
}

async fn versions_are_stored_once_and_the_last_activation_routes(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    assert!(store.rules_activations(5).await.unwrap().is_empty());
    let v1 = version("a = 1\n", "王", t0);
    let v2 = version("a = 2\n", "李", t0 + TimeDelta::minutes(1));
    let a1 = store
        .publish_rules(&v1, &activating("publish", t0))
        .await
        .unwrap();
    let a2 = store
        .publish_rules(&v2, &activating("publish", t0 + TimeDelta::minutes(1)))
        .await
        .unwrap();
    assert_eq!((a1.seq, a2.seq), (1, 2));
    // The same files published again: no second copy, one more activation.
    let again = RulesVersion {
        author: "someone else".into(),
        ..v1.clone()
    };
    let a3 = store
        .publish_rules(&again, &activating("publish", t0 + TimeDelta::minutes(2)))
        .await
        .unwrap();
    assert_eq!((a3.seq, a3.version.as_str()), (3, v1.version.as_str()));
    // Publishing the active version again (two processes starting at once): nothing added.
    let a3_again = store
        .publish_rules(&again, &activating("publish", t0 + TimeDelta::minutes(2)))
        .await
        .unwrap();
    assert_eq!(a3_again, a3);
    let stored = store.rules_versions().await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|v| (v.seq, v.version.as_str(), v.author.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, v1.version.as_str(), "王"),
            (2, v2.version.as_str(), "李")
        ]
    );
    assert!(stored[0].files.is_empty(), "a listing leaves the files out");
    let read = store.rules_version(&v2.version).await.unwrap().unwrap();
    assert_eq!(read.files, v2.files);
    assert_eq!(
        (read.seq, read.at, read.diff.as_str()),
        (2, v2.at, "+a line\n")
    );

    let rolled = store
        .activate_rules(
            &v2.version,
            &activating("rollback", t0 + TimeDelta::minutes(3)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rolled.seq, rolled.action.as_str()), (4, "rollback"));
    assert!(store
        .activate_rules("r-000000000000", &activating("rollback", t0))
        .await
        .unwrap()
        .is_none());
    let history = store.rules_activations(10).await.unwrap();
    assert_eq!(
        history.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [4, 3, 2, 1],
        "newest first"
    );
    assert_eq!(history[0].version, v2.version, "the last activation routes");
    drop(store);
    let report = db.open().await.verify_history(None, None).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.broken);
    assert_eq!((report.rules_versions, report.rules_activations), (2, 4));
}

async fn an_edited_or_deleted_version_or_activation_is_named(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    for (i, rules) in ["a = 1\n", "a = 2\n", "a = 3\n"].into_iter().enumerate() {
        let at = t0 + TimeDelta::minutes(i as i64);
        store
            .publish_rules(&version(rules, "王", at), &activating("publish", at))
            .await
            .unwrap();
    }
    // A rule changed in the stored files after the fact (and the digest left as it was).
    tamper(
        db,
        "UPDATE rules_versions SET files = replace(files, 'a = 2', 'a = 9') WHERE seq = 2",
    )
    .await;
    tamper(db, "DELETE FROM rules_activations WHERE seq = 2").await;
    let broken = broken_links(&*store).await;
    assert_eq!(
        broken,
        [
            (
                Place::RulesVersion { seq: 2 },
                "the version's content does not match its hash: it was edited".to_owned()
            ),
            (
                Place::RulesActivation { seq: 3 },
                "row 2 before it is missing (deleted)".to_owned()
            ),
        ]
    );
}

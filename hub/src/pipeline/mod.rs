//! The streams through the hub: departmental records into feed topics ([`ingest`], with
//! [`push`] for webhook connectors), events from feed topics into tasks ([`routing`]), task
//! events out to Kafka and departmental webhooks ([`outbox_relay`]) and to live consoles
//! ([`live_feed`]), refused records to the dead-letter topic ([`dead_letters`]), and the
//! routing folder's hot reload ([`watcher`]) or the store's active rules version
//! ([`rules_follower`]). They hand out handles; they never build HTTP routes.

pub mod dead_letters;
pub mod ingest;
pub mod live_feed;
pub mod outbox_relay;
pub mod push;
pub mod routing;
pub mod rules_follower;
pub mod watcher;

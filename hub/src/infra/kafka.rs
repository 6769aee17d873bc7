//! Kafka clients: topic set-up, an idempotent producer, and consumer groups.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{RouterAssignment, TopicConfig};
use crate::infra::telemetry;

/// A consumer of the hub: a [`StreamConsumer`] that reports its partitions.
pub type HubConsumer = StreamConsumer<PartitionsContext>;

/// Keeps `hub_kafka_partitions_assigned{group}` at what this process holds after every
/// rebalance, so an operator running several hub processes sees which holds how much.
pub struct PartitionsContext {
    group: String,
}

impl ClientContext for PartitionsContext {}

impl ConsumerContext for PartitionsContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The whole assignment, not the event's list: right for eager and cooperative
        // protocols alike.
        let held = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        metrics::gauge!(telemetry::KAFKA_PARTITIONS_ASSIGNED, "group" => self.group.clone())
            .set(held as f64);
        if let Rebalance::Error(e) = rebalance {
            tracing::warn!(group = %self.group, error = %e, "consumer group rebalance failed");
        } else {
            tracing::info!(group = %self.group, partitions = held, "consumer group rebalanced");
        }
    }
}

/// Connection to the cluster shared by every component of one hub process.
#[derive(Clone)]
pub struct Kafka {
    brokers: String,
    client_id: String,
    producer: FutureProducer,
}

impl Kafka {
    pub fn connect(brokers: &str, client_id: &str) -> anyhow::Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", client_id)
            // Retries never duplicate or reorder a partition's records.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Keep retrying through a broker outage of up to 5 minutes before a send fails.
            .set("message.timeout.ms", "300000")
            .create()
            .context("creating the Kafka producer")?;
        Ok(Kafka {
            brokers: brokers.to_owned(),
            client_id: client_id.to_owned(),
            producer,
        })
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Create the topics that do not exist yet (existing ones are left as they are).
    pub async fn ensure_topics(&self, topics: &[TopicConfig]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .create()
            .context("creating the Kafka admin client")?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(&new, &options)
            .await
            .context("creating topics")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("cannot create topic {name}: {code}"),
            }
        }
        Ok(())
    }

    /// Produce one record and wait until the broker has it. A full local queue is
    /// backpressure: the call waits for room rather than failing.
    pub async fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        match self.producer.send(record, Timeout::Never).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e),
        }
    }

    /// A consumer of `topics` for group `group`. Offsets are stored by the caller only after
    /// its database transaction commits, and committed in the background.
    ///
    /// With [`RouterAssignment::Group`] it subscribes as a group member; with
    /// [`RouterAssignment::Static`] it assigns itself every partition the topics have now and
    /// resumes each from the group's committed offset.
    pub fn consumer(
        &self,
        group: &str,
        assignment: RouterAssignment,
        topics: &[&str],
    ) -> anyhow::Result<HubConsumer> {
        let mut config = ClientConfig::new();
        // librdkafka's own debug contexts (e.g. `cgrp,fetch`) for diagnosing group issues.
        if let Ok(contexts) = std::env::var("HUB_KAFKA_DEBUG") {
            config.set("debug", contexts);
        }
        let consumer: HubConsumer = config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            // A fetch that finds nothing new waits this long for it on the broker. The
            // default (500 ms) was the whole of a lone event's routing delay with the
            // embedded broker; 25 ms costs a few idle fetches a second.
            .set("fetch.wait.max.ms", "25")
            .create_with_context(PartitionsContext {
                group: group.to_owned(),
            })
            .context("creating the Kafka consumer")?;
        match assignment {
            RouterAssignment::Group => consumer
                .subscribe(topics)
                .context("subscribing to topics")?,
            RouterAssignment::Static => {
                let mut partitions = TopicPartitionList::new();
                for topic in topics {
                    // Metadata calls block: keep them off the async workers' hot path.
                    let metadata = tokio::task::block_in_place(|| {
                        consumer.fetch_metadata(Some(topic), Duration::from_secs(30))
                    })
                    .with_context(|| format!("reading the partitions of {topic}"))?;
                    for t in metadata.topics() {
                        for p in t.partitions() {
                            // `Stored`: resume from the group's committed offset.
                            partitions.add_partition_offset(t.name(), p.id(), Offset::Stored)?;
                        }
                    }
                }
                consumer
                    .assign(&partitions)
                    .context("assigning feed partitions")?;
                // No rebalance follows an assignment of one's own.
                metrics::gauge!(telemetry::KAFKA_PARTITIONS_ASSIGNED, "group" => group.to_owned())
                    .set(partitions.count() as f64);
            }
        }
        Ok(consumer)
    }
}

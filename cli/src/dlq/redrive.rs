//! `shelfsync dlq redrive`: dead letters back to the topics they came from, each at most once.
//!
//! A redriven record is the dead letter's key and value, with its timestamp (the original
//! record's), sent to the topic the record was read from, with two headers:
//! `shelfsync-redrive-of` (`<dlq topic>/<partition>/<offset>`, the dead letter) and
//! `shelfsync-redrive-attempt` (1, or one more than the attempt that was dead-lettered again).
//!
//! **Once.** Each redriven dead letter is recorded in the ledger `<application_id>-dlq-redrives`
//! (compacted, keyed by the dead letter) *in the same Kafka transaction* as the record it
//! re-sends: both are visible or neither is. The redrive first initialises its transactional
//! producer (`transactional.id` `<application_id>-dlq-redrive`), which fences any earlier redrive
//! still running, and only then reads the ledger: a dead letter found there is skipped. So the
//! same dead letter redriven twice — the same command run again, two operators at once, a
//! redrive killed halfway — reaches its topic once. A redriven record that fails again is a new
//! dead letter, with the attempt in its headers, and can be redriven in turn.
//!
//! **What can be redriven.** A record read from a source topic (raw orders, ERP inventory, ERP
//! products), and a push dead letter (an availability update, back to the availability topic,
//! where the push sink reads it again). Not a record of an internal topic (its stamp is what
//! made it authentic, and a re-sent copy has none), and not a dead letter cut to fit (only a
//! prefix of it is there; its headers say where the original is).

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use shelfsync_pipeline::kafka;
use shelfsync_topology::{TopicId, Topology};

use super::{read_all, Filter, Listed};

/// Dead letters redriven per transaction.
const PER_TRANSACTION: usize = 5_000;

/// Where a dead letter goes back to, or why it does not.
fn target(topology: &Topology, l: &Listed) -> Result<String, String> {
    let d = &l.letter;
    if let Some(r) = &l.redriven {
        return Err(format!("already redriven ({r})"));
    }
    if d.truncated() {
        return Err(format!(
            "cut to fit the dead-letter topic; the original is at {}",
            d.source()
        ));
    }
    if d.value.is_none() {
        return Err("it has no value".into());
    }
    let Some(topic) = d.source_topic() else {
        return Err("it does not say which topic it came from".into());
    };
    let id = TopicId::ALL
        .into_iter()
        .find(|id| topology.topic_name(*id) == topic);
    let push = d.stage() == shelfsync_pipeline::push::STAGE;
    match id {
        Some(TopicId::RawOrders | TopicId::ErpInventory | TopicId::ErpProducts) if !push => {
            Ok(topic)
        }
        Some(TopicId::Availability) if push => Ok(topic),
        Some(id) => Err(format!(
            "it was read from {topic} ({}), which only the pipeline writes: fix the cause and replay its source record instead",
            id.key()
        )),
        None => Err(format!("{topic} is not a topic of this topology")),
    }
}

/// The transactional producer of redrives, initialised (which fences an earlier one).
fn producer(topology: &Topology, timeout: Duration) -> anyhow::Result<BaseProducer> {
    let mut config = kafka::producer_config(topology);
    config.set(
        "transactional.id",
        format!("{}-dlq-redrive", topology.application_id),
    );
    let producer: BaseProducer = config.create()?;
    producer
        .init_transactions(timeout)
        .context("initialise the redrive's transactions (is the broker's transaction state topic available?)")?;
    Ok(producer)
}

/// Redrives the dead letters `filter` admits.
pub(super) fn run(
    topology: &Topology,
    filter: &Filter,
    dry_run: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let ledger_topic = topology.topic_name(TopicId::DlqRedrives);
    if !dry_run && !crate::read::topic_exists(topology, &ledger_topic, timeout)? {
        bail!(
            "the redrive ledger topic {ledger_topic} does not exist: run `shelfsync topics create` with this topology first"
        );
    }
    // Fence any redrive still running before reading what it may have redriven.
    let producer = if dry_run {
        None
    } else {
        Some(producer(topology, timeout)?)
    };
    let all = read_all(topology, timeout)?;
    let selected: Vec<&Listed> = all.iter().filter(|l| filter.admits(l)).collect();
    let dlq = topology.topic_name(TopicId::Dlq);
    let mut go: Vec<(&Listed, String)> = Vec::new();
    let mut skipped = 0usize;
    for l in &selected {
        match target(topology, l) {
            Ok(topic) => {
                println!(
                    "redrive {} → {topic} (attempt {})",
                    l.letter.id(),
                    l.letter.attempt() + 1
                );
                go.push((l, topic));
            }
            Err(why) => {
                skipped += 1;
                println!("skip    {}: {why}", l.letter.id());
            }
        }
    }
    let Some(producer) = producer else {
        println!(
            "dry run: {} of {} selected dead letters would be redriven, {skipped} not",
            go.len(),
            selected.len()
        );
        return Ok(());
    };
    let now = shelfsync_pipeline::clock::now_ms();
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    for chunk in go.chunks(PER_TRANSACTION) {
        producer.begin_transaction()?;
        let sent = (|| -> anyhow::Result<()> {
            for (l, topic) in chunk {
                let d = &l.letter;
                let of = d.ledger_key(&dlq);
                let attempt = (d.attempt() + 1).to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: kafka::REDRIVE_OF_HEADER,
                        value: Some(of.as_bytes()),
                    })
                    .insert(Header {
                        key: kafka::REDRIVE_ATTEMPT_HEADER,
                        value: Some(attempt.as_bytes()),
                    });
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                    .payload(d.value.as_deref().unwrap_or_default())
                    .timestamp(d.timestamp)
                    .headers(headers);
                if let Some(key) = d.key.as_deref() {
                    record = record.key(key);
                }
                send(&producer, record)?;
                let entry = json!({
                    "redriven_at": super::time_text(now),
                    "to": topic,
                    "attempt": d.attempt() + 1,
                    "by": by,
                    "kind": d.kind(),
                })
                .to_string();
                send(
                    &producer,
                    BaseRecord::to(&ledger_topic)
                        .key(of.as_bytes())
                        .payload(entry.as_bytes()),
                )?;
            }
            Ok(())
        })();
        if let Err(e) = sent {
            let _ = producer.abort_transaction(timeout);
            return Err(e.context("redrive aborted: nothing of this batch was sent"));
        }
        producer
            .commit_transaction(timeout)
            .context("commit the redrive (aborted: nothing of this batch was sent)")?;
    }
    println!(
        "redriven: {} of {} selected dead letters, {skipped} not",
        go.len(),
        selected.len()
    );
    Ok(())
}

/// Sends `record`, waiting for room in the producer's queue when it is full.
fn send(producer: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                producer.poll(Duration::from_millis(100));
                record = back;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

//! The topologies of the bench: the base (the example or `--topology`, with the flags
//! applied) and, per phase, the base under a fresh application id with topics of its own.

use anyhow::{bail, Context};
use shelfsync_topology::{AdapterKind, ChannelSpec, LocationSpec, Topology};

use super::BenchArgs;

/// The base topology with the flags applied.
pub(super) fn base_topology(args: &BenchArgs) -> anyhow::Result<Topology> {
    let text = match &args.topology {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => crate::EXAMPLE_TOPOLOGY.to_string(),
    };
    let mut t = Topology::parse_toml_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.locations > 0 {
        t.locations = (1..=args.locations)
            .map(|i| {
                let id = if i == 1 {
                    "dc-1".to_string()
                } else {
                    format!("store-{i}")
                };
                LocationSpec {
                    name: id.clone(),
                    id,
                    sellable: true,
                }
            })
            .collect();
        for c in &mut t.channels {
            c.eligible_locations = None;
        }
    }
    if args.channels > 0 {
        let n = args.channels as usize;
        t.channels.truncate(n);
        let mut k = t.channels.len();
        while t.channels.len() < n {
            k += 1;
            let mut c = ChannelSpec::new(&format!("market-{k}"), AdapterKind::Generic);
            c.share_pct = 10.into();
            t.channels.push(c);
        }
    }
    if args.partitions > 0 {
        t.topics.partitions = args.partitions;
        t.topics.partition_overrides.retain(|k, _| k == "dlq");
    }
    if let Some(delay) = args.max_alignment_delay {
        t.processing.max_alignment_delay = delay;
    }
    if let Some(epoch) = args.epoch {
        t.processing.epoch_interval = epoch;
    }
    // Marketplace push settings play no part here.
    for c in &mut t.channels {
        c.push = None;
    }
    Ok(t)
}

/// `base` on `bootstrap` under a fresh application id, with external topics of its own.
pub(super) fn phase_topology(
    base: &Topology,
    bootstrap: &str,
    app: &str,
) -> anyhow::Result<Topology> {
    let mut t = base.clone();
    t.application_id = app.to_string();
    t.kafka.bootstrap_servers = bootstrap.to_string();
    let topics = &mut t.topics;
    for name in [
        &mut topics.raw_orders,
        &mut topics.erp_inventory,
        &mut topics.erp_products,
        &mut topics.availability,
        &mut topics.validated_orders,
        &mut topics.order_status,
        &mut topics.dlq,
    ] {
        *name = format!("{app}.{name}");
    }
    if let Err(errors) = t.validate() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("the benchmark topology is invalid: {}", list.join("; "));
    }
    Ok(t)
}

pub(super) fn create_topics(topology: &Topology) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(shelfsync_pipeline::admin::create_topics(topology))
        .with_context(|| format!("create the topics of {}", topology.application_id))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::generator::TrafficArgs;
    use shelfsync_topology::TopicId;

    #[test]
    fn the_base_topology_takes_the_flags() {
        let args = BenchArgs {
            bootstrap: "127.0.0.1:1".into(),
            restore_bootstrap: None,
            topology: None,
            locations: 3,
            channels: 7,
            partitions: 2,
            epoch: Some(Duration::from_millis(50)),
            max_alignment_delay: Some(Duration::ZERO),
            phases: vec![],
            traffic: TrafficArgs {
                skus: 100,
                orders_per_sec: 1.0,
                erp_updates_per_sec: 1.0,
                duplicate_pct: 0,
                cancel_pct: 0,
                revision_pct: 0,
                duration: Duration::from_secs(1),
                seed: 1,
            },
            backlog: Duration::from_secs(1),
            restore_skus: 100,
            peer: None,
            stage_commands: 100,
            stage_skus: 10,
            stage_live_rate: 1.0,
            stage_live: Duration::ZERO,
            timeout: Duration::from_secs(1),
            json: None,
            work_dir: None,
        };
        let base = base_topology(&args).unwrap();
        let t = phase_topology(&base, "127.0.0.1:2", "bench-1-x").unwrap();
        assert_eq!(t.locations.len(), 3);
        assert_eq!(t.channels.len(), 7);
        assert_eq!(t.partitions(TopicId::InventoryCommands), 2);
        assert_eq!(
            t.topic_name(TopicId::RawOrders),
            "bench-1-x.retail.channel.orders.raw"
        );
        assert_eq!(t.kafka.bootstrap_servers, "127.0.0.1:2");
        assert_eq!(t.processing.max_alignment_delay, Duration::ZERO);
    }
}

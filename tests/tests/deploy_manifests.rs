//! Checks of `deploy/` that need no cluster: every YAML and JSON file parses (duplicate keys are
//! errors); the Grafana dashboard and the alert rules only use metrics that shelfsync exports
//! (the constants of `pipeline/src/metrics.rs`, with `_bucket`/`_sum`/`_count` for histograms),
//! and the dashboard shows every one of them; the Kubernetes manifests fit the binary (probe
//! paths, HTTP port, state volume, topology file) and each other (labels, names, consumer group,
//! replica bound); and the README documents every metric.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use shelfsync_pipeline::http::{HEALTHZ_PATH, READYZ_PATH};
use shelfsync_pipeline::metrics::{self, MetricKind};
use shelfsync_topology::{Stage, Topology};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// Every file under `dir` whose name ends in one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if exts
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn yaml_docs(path: &Path) -> Result<Vec<Yaml>> {
    let text = std::fs::read_to_string(path)?;
    YamlLoader::load_from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn json_doc(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

/// The Kubernetes objects of the YAML files in `deploy/`, by kind.
fn objects() -> Result<BTreeMap<String, Vec<Yaml>>> {
    let mut out: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    for path in files(&deploy(), &["yaml", "yml"])? {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue; // tool configuration (.yamllint.yaml)
        }
        for doc in yaml_docs(&path)? {
            let kind = doc["kind"]
                .as_str()
                .with_context(|| format!("{}: a document without kind", path.display()))?;
            out.entry(kind.to_string()).or_default().push(doc);
        }
    }
    Ok(out)
}

fn one<'a>(objects: &'a BTreeMap<String, Vec<Yaml>>, kind: &str) -> Result<&'a Yaml> {
    match objects.get(kind).map(Vec::as_slice) {
        Some([only]) => Ok(only),
        other => bail!(
            "want exactly one {kind}, found {}",
            other.map_or(0, <[_]>::len)
        ),
    }
}

fn yaml_strings(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::String(s) | Yaml::Real(s) => out.push(s.clone()),
        Yaml::Array(a) => a.iter().for_each(|v| yaml_strings(v, out)),
        Yaml::Hash(h) => h.iter().for_each(|(k, v)| {
            yaml_strings(k, out);
            yaml_strings(v, out);
        }),
        _ => {}
    }
}

fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k.clone());
            json_strings(v, out);
        }),
        _ => {}
    }
}

/// Every `shelfsync_…` identifier in `text` (PromQL metric names).
fn metric_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("shelfsync_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The metric names declared in `pipeline/src/metrics.rs` (`pub const X: &str = "shelfsync_…";`),
/// read as text, with their kind from the crate's table.
fn declared() -> Result<BTreeMap<String, MetricKind>> {
    let source = std::fs::read_to_string(repo().join("pipeline/src/metrics.rs"))?;
    let mut out = BTreeMap::new();
    for line in source.lines() {
        let line = line.trim();
        if !(line.starts_with("pub const ") && line.contains(": &str = \"shelfsync_")) {
            continue;
        }
        let name = line.split('"').nth(1).context("constant without string")?;
        let kind = metrics::find(name)
            .with_context(|| format!("{name} is declared but not in metrics::ALL"))?
            .kind;
        out.insert(name.to_string(), kind);
    }
    ensure!(
        out.len() == metrics::ALL.len(),
        "metrics.rs declares {} names, metrics::ALL lists {}",
        out.len(),
        metrics::ALL.len()
    );
    Ok(out)
}

/// The declared metric a series name belongs to: itself, or a histogram's `_bucket`, `_sum`
/// or `_count` series.
fn series_of(declared: &BTreeMap<String, MetricKind>, series: &str) -> Option<String> {
    if declared.contains_key(series) {
        return Some(series.to_string());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        (declared.get(base) == Some(&MetricKind::Histogram)).then(|| base.to_string())
    })
}

fn check_refs(
    what: &str,
    strings: &[String],
    declared: &BTreeMap<String, MetricKind>,
) -> Result<BTreeSet<String>> {
    let mut used = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for s in strings {
        for series in metric_refs(s) {
            match series_of(declared, &series) {
                Some(base) => {
                    used.insert(base);
                }
                None => {
                    unknown.insert(series);
                }
            }
        }
    }
    ensure!(
        unknown.is_empty(),
        "{what}: metrics shelfsync does not export: {unknown:?}"
    );
    Ok(used)
}

#[test]
fn the_reference_extractor_finds_names_and_suffixes() {
    let refs = metric_refs(
        r#"histogram_quantile(0.99, sum by (le) (rate(shelfsync_epoch_commit_seconds_bucket{job="shelfsync"}[5m]))) / x_shelfsync_no"#,
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["shelfsync_epoch_commit_seconds_bucket"]
    );
    let mut d = BTreeMap::new();
    d.insert("shelfsync_a_seconds".to_string(), MetricKind::Histogram);
    d.insert("shelfsync_b_total".to_string(), MetricKind::Counter);
    assert!(series_of(&d, "shelfsync_a_seconds_count").is_some());
    assert!(series_of(&d, "shelfsync_b_total_count").is_none());
    assert!(series_of(&d, "shelfsync_c").is_none());
}

#[test]
fn every_manifest_parses_and_names_its_kind() -> Result<()> {
    let yaml = files(&deploy(), &["yaml", "yml"])?;
    let json = files(&deploy(), &["json"])?;
    ensure!(yaml.len() >= 8, "too few YAML files in deploy/: {yaml:?}");
    ensure!(!json.is_empty(), "no dashboard in deploy/");
    for path in &yaml {
        let docs = yaml_docs(path)?;
        ensure!(!docs.is_empty(), "{}: empty", path.display());
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        for doc in &docs {
            ensure!(
                doc["apiVersion"].as_str().is_some(),
                "{}: no apiVersion",
                path.display()
            );
            ensure!(
                doc["kind"].as_str().is_some(),
                "{}: no kind",
                path.display()
            );
            let kustomization = doc["kind"].as_str() == Some("Kustomization");
            ensure!(
                kustomization || doc["metadata"]["name"].as_str().is_some(),
                "{}: no metadata.name",
                path.display()
            );
        }
    }
    for path in &json {
        json_doc(path)?;
    }
    // The kustomization lists exactly the manifests of its folder.
    let dir = deploy().join("kubernetes");
    let k = yaml_docs(&dir.join("kustomization.yaml"))?;
    let listed: BTreeSet<String> = k[0]["resources"]
        .as_vec()
        .context("resources")?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let present: BTreeSet<String> = files(&dir, &["yaml"])?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    ensure!(
        listed == present,
        "kustomization lists {listed:?}, folder has {present:?}"
    );
    Ok(())
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() -> Result<()> {
    let declared = declared()?;
    let mut dashboard_strings = Vec::new();
    for path in files(&deploy().join("grafana"), &["json"])? {
        json_strings(&json_doc(&path)?, &mut dashboard_strings);
    }
    let shown = check_refs("the Grafana dashboard", &dashboard_strings, &declared)?;
    let missing: Vec<&String> = declared.keys().filter(|n| !shown.contains(*n)).collect();
    ensure!(
        missing.is_empty(),
        "the dashboard shows no panel for {missing:?}: add one"
    );

    let mut alert_strings = Vec::new();
    for path in files(&deploy().join("prometheus"), &["yaml"])? {
        for doc in yaml_docs(&path)? {
            yaml_strings(&doc, &mut alert_strings);
        }
    }
    let alerted = check_refs("the alert rules", &alert_strings, &declared)?;
    ensure!(alerted.len() >= 8, "alerts use only {alerted:?}");
    Ok(())
}

#[test]
fn alert_rules_are_complete() -> Result<()> {
    let objects = objects()?;
    let rule = one(&objects, "PrometheusRule")?;
    let mut names = BTreeSet::new();
    for group in rule["spec"]["groups"].as_vec().context("groups")? {
        for r in group["rules"].as_vec().context("rules")? {
            let name = r["alert"].as_str().context("a rule without alert name")?;
            ensure!(names.insert(name.to_string()), "{name} twice");
            ensure!(
                r["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{name}: no expr"
            );
            ensure!(r["for"].as_str().is_some(), "{name}: no `for`");
            ensure!(
                matches!(
                    r["labels"]["severity"].as_str(),
                    Some("critical" | "warning" | "info")
                ),
                "{name}: severity"
            );
            for a in ["summary", "description"] {
                ensure!(r["annotations"][a].as_str().is_some(), "{name}: no {a}");
            }
        }
    }
    for want in [
        "ShelfsyncConsumerLagHigh",
        "ShelfsyncDeadLetters",
        "ShelfsyncRestoreStuck",
        "ShelfsyncAvailabilityStale",
        "ShelfsyncEpochCommitSlow",
    ] {
        ensure!(names.contains(want), "no {want} alert in {names:?}");
    }
    Ok(())
}

fn labels(y: &Yaml) -> BTreeMap<String, String> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn subset(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    !a.is_empty() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

#[test]
fn kubernetes_manifests_fit_the_binary_and_each_other() -> Result<()> {
    let objects = objects()?;
    let sts = one(&objects, "StatefulSet")?;
    let name = sts["metadata"]["name"].as_str().context("name")?;
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let selector = labels(&spec["selector"]["matchLabels"]);
    let pod_labels = labels(&spec["template"]["metadata"]["labels"]);
    ensure!(
        subset(&selector, &pod_labels),
        "selector does not select the pods"
    );

    let containers = pod["containers"].as_vec().context("containers")?;
    let c = containers.first().context("no container")?;
    let args: Vec<&str> = c["args"]
        .as_vec()
        .context("args")?
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    ensure!(args.first() == Some(&"run"), "{args:?}");
    let arg = |flag: &str| -> Result<&str> {
        let i = args
            .iter()
            .position(|a| *a == flag)
            .with_context(|| format!("no {flag}"))?;
        args.get(i + 1)
            .copied()
            .with_context(|| format!("{flag} without value"))
    };
    let env: BTreeMap<String, Yaml> = c["env"]
        .as_vec()
        .context("env")?
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e.clone())))
        .collect();
    // Besides the binary's own variables, only the downward-API values they are built from.
    ensure!(
        env.keys()
            .all(|k| k.starts_with("SHELFSYNC_") || k == "POD_NAME" || k == "POD_NAMESPACE"),
        "env outside SHELFSYNC_*: {:?}",
        env.keys()
    );
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        ensure!(
            env.get(var)
                .and_then(|e| e["valueFrom"]["fieldRef"]["fieldPath"].as_str())
                == Some(field),
            "{var} is not the pod's {field}"
        );
    }

    // HTTP: the probes hit the real routes on the port the binary listens on.
    let http_addr = env
        .get("SHELFSYNC_HTTP_ADDR")
        .and_then(|e| e["value"].as_str())
        .context("SHELFSYNC_HTTP_ADDR")?;
    let http_port: i64 = http_addr.rsplit(':').next().unwrap_or("").parse()?;
    ensure!(
        http_addr.starts_with("0.0.0.0:"),
        "{http_addr}: not reachable by the kubelet"
    );
    let ports = c["ports"].as_vec().context("ports")?;
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .context("no port named http")?;
    ensure!(
        http["containerPort"].as_i64() == Some(http_port),
        "container port"
    );
    // The instance directory: the pod name as instance id, and an advertised URL that other
    // pods resolve (the governing headless service) on the port the binary listens on.
    let value = |var: &str| env.get(var).and_then(|e| e["value"].as_str());
    ensure!(
        value("SHELFSYNC_INSTANCE_ID") == Some("$(POD_NAME)"),
        "instance id"
    );
    // Static membership: the stable pod name, so a restarted pod rejoins as itself.
    ensure!(
        value("SHELFSYNC_GROUP_INSTANCE_ID") == Some("$(POD_NAME)"),
        "group instance id"
    );
    let service = spec["serviceName"].as_str().context("serviceName")?;
    let advertised = format!("http://$(POD_NAME).{service}.$(POD_NAMESPACE).svc:{http_port}");
    ensure!(
        value("SHELFSYNC_ADVERTISED_URL") == Some(advertised.as_str()),
        "SHELFSYNC_ADVERTISED_URL should be {advertised}"
    );
    for (probe, path) in [
        ("readinessProbe", READYZ_PATH),
        ("livenessProbe", HEALTHZ_PATH),
    ] {
        let get = &c[probe]["httpGet"];
        ensure!(get["path"].as_str() == Some(path), "{probe} path");
        ensure!(get["port"].as_str() == Some("http"), "{probe} port");
    }

    // State: a volume per pod, mounted where --state-dir points.
    let state_dir = arg("--state-dir")?;
    let claims = spec["volumeClaimTemplates"]
        .as_vec()
        .context("volumeClaimTemplates")?;
    let claim = claims.first().context("no volume claim template")?;
    let claim_name = claim["metadata"]["name"].as_str().context("claim name")?;
    let mounts = c["volumeMounts"].as_vec().context("volumeMounts")?;
    let mount_of = |volume: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .and_then(|m| m["mountPath"].as_str())
    };
    let state_mount = mount_of(claim_name).context("state volume not mounted")?;
    ensure!(
        Path::new(state_dir).starts_with(state_mount),
        "--state-dir {state_dir} is not on the volume mounted at {state_mount}"
    );

    // Graceful stop: longer than an epoch plus its commit.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .context("grace period")?;
    ensure!(grace >= 30, "terminationGracePeriodSeconds {grace}");

    // The topology: from the ConfigMap mounted where --topology points; with the StatefulSet's
    // environment applied it validates, as `shelfsync run` would load it.
    let topology_path = Path::new(arg("--topology")?);
    let volumes = pod["volumes"].as_vec().context("volumes")?;
    let (vol_name, cm_name) = volumes
        .iter()
        .find_map(|v| Some((v["name"].as_str()?, v["configMap"]["name"].as_str()?)))
        .context("no configMap volume")?;
    ensure!(
        topology_path.parent().and_then(Path::to_str) == mount_of(vol_name),
        "--topology is not in the ConfigMap's mount"
    );
    let cm = objects["ConfigMap"]
        .iter()
        .find(|c| c["metadata"]["name"].as_str() == Some(cm_name))
        .with_context(|| format!("no ConfigMap {cm_name}"))?;
    let file = topology_path
        .file_name()
        .and_then(|f| f.to_str())
        .context("file")?;
    let toml = cm["data"][file]
        .as_str()
        .with_context(|| format!("ConfigMap has no {file}"))?;
    let mut topology = Topology::parse_toml_str(toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    topology
        .validate()
        .map_err(|e| anyhow::anyhow!("the ConfigMap's topology alone: {e:?}"))?;
    let env_values = env.iter().map(|(k, e)| {
        let v = e["value"]
            .as_str()
            .unwrap_or("from-a-reference")
            .to_string();
        (k.clone(), v)
    });
    topology.apply_env(env_values);
    topology
        .validate()
        .map_err(|e| anyhow::anyhow!("topology with the StatefulSet's env: {e:?}"))?;
    ensure!(topology.processing.epoch_interval < Duration::from_secs(grace as u64 / 2));

    // Service: headless, selects the pods, is the StatefulSet's governing service.
    let svc = one(&objects, "Service")?;
    ensure!(
        svc["spec"]["clusterIP"].as_str() == Some("None"),
        "service not headless"
    );
    ensure!(spec["serviceName"].as_str() == svc["metadata"]["name"].as_str());
    ensure!(
        subset(&labels(&svc["spec"]["selector"]), &pod_labels),
        "service selector"
    );
    ensure!(
        svc["spec"]["ports"]
            .as_vec()
            .context("service ports")?
            .iter()
            .any(|p| p["targetPort"].as_str() == Some("http")
                && p["port"].as_i64() == Some(http_port)),
        "service port"
    );

    // PodDisruptionBudget: the same pods.
    let pdb = one(&objects, "PodDisruptionBudget")?;
    ensure!(
        subset(
            &labels(&pdb["spec"]["selector"]["matchLabels"]),
            &pod_labels
        ),
        "pdb selector"
    );

    // KEDA: scales this StatefulSet on the lag of this group, at most one pod per partition.
    let so = one(&objects, "ScaledObject")?;
    let target = &so["spec"]["scaleTargetRef"];
    ensure!(
        target["kind"].as_str() == Some("StatefulSet") && target["name"].as_str() == Some(name)
    );
    let max_partitions = Stage::ALL
        .iter()
        .map(|s| topology.partitions(s.input()))
        .max()
        .context("stages")?;
    ensure!(
        so["spec"]["maxReplicaCount"].as_i64() == Some(i64::from(max_partitions)),
        "maxReplicaCount must be the partition count, {max_partitions}"
    );
    ensure!(so["spec"]["minReplicaCount"]
        .as_i64()
        .is_some_and(|m| m >= 1));
    let triggers = so["spec"]["triggers"].as_vec().context("triggers")?;
    let kafka = triggers
        .iter()
        .find(|t| t["type"].as_str() == Some("kafka"))
        .context("no kafka trigger")?;
    ensure!(
        kafka["metadata"]["consumerGroup"].as_str() == Some(topology.application_id.as_str()),
        "the trigger's consumerGroup is not the application_id"
    );
    ensure!(
        kafka["metadata"]["bootstrapServers"].as_str()
            == Some(topology.kafka.bootstrap_servers.as_str()),
        "the trigger's bootstrapServers differ from the pods'"
    );
    ensure!(kafka["metadata"]["lagThreshold"].as_str().is_some());

    // Prometheus scrapes the port named http.
    let pm = one(&objects, "PodMonitor")?;
    ensure!(subset(
        &labels(&pm["spec"]["selector"]["matchLabels"]),
        &pod_labels
    ));
    ensure!(pm["spec"]["podMetricsEndpoints"][0]["port"].as_str() == Some("http"));
    Ok(())
}

#[test]
fn the_readme_documents_every_metric() -> Result<()> {
    let readme = std::fs::read_to_string(repo().join("README.md"))?;
    let section = readme
        .split("\n## Operating shelfsync")
        .nth(1)
        .context("README has no \"## Operating shelfsync\" section")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented = metric_refs(section);
    for m in metrics::ALL {
        ensure!(
            section.contains(&format!("| `{}` | {} |", m.name, m.kind.as_str())),
            "README's metric table has no row `| `{}` | {} | …`",
            m.name,
            m.kind.as_str()
        );
    }
    let declared = declared()?;
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|d| series_of(&declared, d).is_none())
        .collect();
    ensure!(
        unknown.is_empty(),
        "README documents metrics that do not exist: {unknown:?}"
    );
    Ok(())
}

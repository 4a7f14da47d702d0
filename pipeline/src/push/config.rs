//! What a channel's sink runs with: its `[channels.push]` table resolved (kind limits applied,
//! credentials read from the environment or a file).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shelfsync_topology::{defaults, ChannelSpec, PushKind, Topology};
use tracing::warn;

use super::marketplaces::for_kind;
use crate::error::{Error, Result};

/// Most quantities Shopify's `inventorySetQuantities` takes in one call.
pub const SHOPIFY_MAX_BATCH: usize = 250;
/// Most SKUs eBay's `bulk_update_price_quantity` takes in one call.
pub const EBAY_MAX_BATCH: usize = 25;
/// Most messages shelfsync puts in one Amazon `JSON_LISTINGS_FEED` or Walmart inventory feed
/// (both take far more; a smaller feed is processed sooner).
pub const FEED_MAX_BATCH: usize = 1_000;
/// Most updates in one webhook call.
pub const WEBHOOK_MAX_BATCH: usize = 1_000;
/// How often a `file:` credential is read again.
const CREDENTIAL_FILE_REFRESH: Duration = Duration::from_secs(60);

/// A secret (token, signing key). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a channel's credentials come from: the value of `credentials_env`, or the file it
/// names with `file:/path` (read again every minute, so a sidecar can rotate tokens).
pub struct Credentials {
    var: String,
    source: Source,
}

enum Source {
    Value(Secret),
    File {
        path: PathBuf,
        cached: Mutex<Option<(Secret, Instant)>>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Value(_) => "env".to_string(),
            Source::File { path, .. } => format!("file {}", path.display()),
        };
        f.debug_struct("Credentials")
            .field("var", &self.var)
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads `var` from `vars`.
    ///
    /// # Errors
    /// [`Error::Config`] when the variable is not set or empty, or names a file that cannot be
    /// read. The message names the variable, never the value.
    pub fn from_env(var: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let value = vars(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Error::Config(format!(
                "the environment variable {var} (credentials_env) is not set or empty"
            ))
        })?;
        let source = match value.strip_prefix("file:") {
            Some(path) => {
                let creds = Source::File {
                    path: PathBuf::from(path.trim()),
                    cached: Mutex::new(None),
                };
                let creds = Self {
                    var: var.to_string(),
                    source: creds,
                };
                creds.secret()?;
                return Ok(creds);
            }
            None => Source::Value(Secret::new(value.trim())),
        };
        Ok(Self {
            var: var.to_string(),
            source,
        })
    }

    /// The current secret.
    ///
    /// # Errors
    /// [`Error::Config`] when a credentials file cannot be read (the last good value is used
    /// while one exists).
    pub fn secret(&self) -> Result<Secret> {
        match &self.source {
            Source::Value(secret) => Ok(secret.clone()),
            Source::File { path, cached } => {
                let mut cached = cached
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((secret, at)) = cached.as_ref() {
                    if at.elapsed() < CREDENTIAL_FILE_REFRESH {
                        return Ok(secret.clone());
                    }
                }
                match std::fs::read_to_string(path) {
                    Ok(text) if !text.trim().is_empty() => {
                        let secret = Secret::new(text.trim());
                        *cached = Some((secret.clone(), Instant::now()));
                        Ok(secret)
                    }
                    result => {
                        let why = match result {
                            Ok(_) => "it is empty".to_string(),
                            Err(e) => e.to_string(),
                        };
                        if let Some((secret, _)) = cached.as_ref() {
                            warn!(var = %self.var, path = %path.display(), error = %why, "cannot read the credentials file again; using the last value");
                            return Ok(secret.clone());
                        }
                        Err(Error::Config(format!(
                            "{}: cannot read the credentials file {}: {why}",
                            self.var,
                            path.display()
                        )))
                    }
                }
            }
        }
    }
}

/// One channel's push settings, resolved.
#[derive(Debug)]
pub struct ChannelConfig {
    /// The channel name (`amazon`): the `channel` of its availability records.
    pub name: String,
    /// Which API.
    pub kind: PushKind,
    /// Base URL, without a trailing `/`.
    pub endpoint: String,
    /// Token-bucket refill rate, requests per second.
    pub rate_per_sec: f64,
    /// Token-bucket capacity.
    pub burst: u32,
    /// Updates per request (capped at the API's maximum).
    pub batch_size: usize,
    /// Request timeout.
    pub timeout: Duration,
    /// Retries after 5xx, timeouts and connection failures before the DLQ.
    pub max_retries: u32,
    /// Concurrent requests.
    pub max_in_flight: usize,
    /// The credentials (`None` only for an unsigned webhook).
    pub credentials: Option<Credentials>,
    /// Shopify Admin API version.
    pub api_version: String,
    /// Shopify location gid.
    pub location_id: String,
    /// Amazon selling partner id.
    pub seller_id: String,
    /// Amazon marketplace ids.
    pub marketplace_ids: Vec<String>,
    /// Amazon product type.
    pub product_type: String,
    /// The token bucket of each rate-limited operation of the marketplace (on top of the
    /// channel's): its published limit, or the channel's `operation_limits` override.
    pub operation_limits: Vec<OperationRate>,
}

/// One operation's token bucket, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRate {
    /// The operation (`createFeed`, …).
    pub operation: &'static str,
    /// Requests per second.
    pub rate_per_sec: f64,
    /// Requests back to back.
    pub burst: u32,
}

/// The published limits of `kind`'s operations, as buckets.
pub(crate) fn published_rates(kind: PushKind) -> Vec<OperationRate> {
    for_kind(kind)
        .operation_limits()
        .iter()
        .map(|l| OperationRate {
            operation: l.operation,
            rate_per_sec: l.rate_per_sec,
            burst: l.burst,
        })
        .collect()
}

impl ChannelConfig {
    /// Resolves every channel of `topology` that has a `[channels.push]` table, reading
    /// credentials through `vars` (pass `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field path of every kind-specific setting that is missing
    /// (see [`Topology::validate_push`]) or the credentials variable that is not set.
    pub fn all(topology: &Topology, vars: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Self>> {
        if let Err(problems) = topology.validate_push() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(Error::Config(format!(
                "the topology cannot be pushed: {}",
                list.join("; ")
            )));
        }
        let mut out = Vec::new();
        for (i, channel) in topology.channels.iter().enumerate() {
            if channel.push.is_some() {
                out.push(Self::from_spec(i, channel, vars)?);
            }
        }
        if out.is_empty() {
            return Err(Error::Config(
                "no channel has a [channels.push] table: nothing to push".to_string(),
            ));
        }
        Ok(out)
    }

    fn from_spec(
        index: usize,
        channel: &ChannelSpec,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let Some(push) = &channel.push else {
            return Err(Error::Bug(format!("channels[{index}] has no push table")));
        };
        let at = format!("channels[{index}].push");
        let max_batch = match push.kind {
            PushKind::Shopify => SHOPIFY_MAX_BATCH,
            PushKind::Ebay => EBAY_MAX_BATCH,
            PushKind::Amazon | PushKind::Walmart => FEED_MAX_BATCH,
            PushKind::Webhook => WEBHOOK_MAX_BATCH,
        };
        let wanted = usize::try_from(push.batch_size).unwrap_or(1).max(1);
        if wanted > max_batch {
            warn!(channel = %channel.name, field = %format!("{at}.batch_size"), configured = wanted, used = max_batch, "batch_size is above what the API takes in one call; using its maximum");
        }
        let mut operation_limits = published_rates(push.kind);
        for (name, limit) in &push.operation_limits {
            let Some(rate) = operation_limits.iter_mut().find(|r| r.operation == name) else {
                let known: Vec<&str> = operation_limits.iter().map(|r| r.operation).collect();
                return Err(Error::Config(format!(
                    "{at}.operation_limits.{name}: {} has no rate-limited operation of that name (it has: {})",
                    push.kind.as_str(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            };
            rate.rate_per_sec = limit.rate_per_sec;
            rate.burst = u32::try_from(limit.burst).unwrap_or(u32::MAX).max(1);
        }
        let credentials = match &push.credentials_env {
            Some(var) => Some(Credentials::from_env(var, vars).map_err(|e| {
                Error::Config(format!("{at}.credentials_env: {}", strip_config(&e)))
            })?),
            None if push.kind == PushKind::Webhook => {
                warn!(channel = %channel.name, "webhook without credentials_env: requests are not signed");
                None
            }
            None => {
                return Err(Error::Config(format!(
                    "{at}.credentials_env must be set for {}",
                    push.kind.as_str()
                )))
            }
        };
        Ok(Self {
            name: channel.name.clone(),
            kind: push.kind,
            endpoint: push.endpoint.trim_end_matches('/').to_string(),
            rate_per_sec: push.rate_per_sec,
            burst: u32::try_from(push.burst).unwrap_or(u32::MAX).max(1),
            batch_size: wanted.min(max_batch),
            timeout: push.timeout,
            max_retries: u32::try_from(push.max_retries).unwrap_or(0),
            max_in_flight: usize::try_from(push.max_in_flight).unwrap_or(1).max(1),
            credentials,
            api_version: push
                .api_version
                .clone()
                .unwrap_or_else(|| defaults::PUSH_SHOPIFY_API_VERSION.to_string()),
            location_id: push.location_id.clone().unwrap_or_default(),
            seller_id: push.seller_id.clone().unwrap_or_default(),
            marketplace_ids: push.marketplace_ids.clone(),
            product_type: push
                .product_type
                .clone()
                .unwrap_or_else(|| defaults::PUSH_AMAZON_PRODUCT_TYPE.to_string()),
            operation_limits,
        })
    }

    /// The current secret, if the channel has credentials.
    ///
    /// # Errors
    /// When a credentials file cannot be read.
    pub fn secret(&self) -> Result<Option<Secret>> {
        self.credentials
            .as_ref()
            .map(Credentials::secret)
            .transpose()
    }
}

fn strip_config(e: &Error) -> String {
    match e {
        Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPOLOGY: &str = r#"
application_id = "app"
[kafka]
bootstrap_servers = "localhost:9092"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "ebay"
adapter = "generic"
[channels.push]
kind = "ebay"
endpoint = "https://api.ebay.com/"
credentials_env = "EBAY_TOKEN"
[[channels]]
name = "shop"
adapter = "shopify"
[channels.push]
kind = "shopify"
endpoint = "https://x.myshopify.com"
credentials_env = "SHOP_TOKEN"
location_id = "gid://shopify/Location/1"
batch_size = 500
[[channels]]
name = "hook"
adapter = "generic"
[channels.push]
kind = "webhook"
endpoint = "https://hooks.example.com/stock"
"#;

    #[test]
    fn resolves_limits_and_reads_credentials_without_showing_them() {
        let topology = Topology::from_toml_str(TOPOLOGY).unwrap();
        let vars = |k: &str| match k {
            "EBAY_TOKEN" => Some("v^1.1#ebay-secret".to_string()),
            "SHOP_TOKEN" => Some("shpat_secret".to_string()),
            _ => None,
        };
        let configs = ChannelConfig::all(&topology, &vars).unwrap();
        assert_eq!(configs.len(), 3);
        // eBay takes 25 SKUs a call, Shopify 250; the default 50 and the 500 asked are capped.
        assert_eq!(configs[0].batch_size, 25);
        assert_eq!(configs[0].endpoint, "https://api.ebay.com");
        assert_eq!(configs[1].batch_size, 250);
        assert_eq!(configs[1].api_version, defaults::PUSH_SHOPIFY_API_VERSION);
        assert_eq!(configs[2].batch_size, 50);
        assert!(configs[2].credentials.is_none());
        let secret = configs[0].secret().unwrap().unwrap();
        assert_eq!(secret.expose(), "v^1.1#ebay-secret");
        let shown = format!("{configs:?} {secret} {secret:?}");
        assert!(
            !shown.contains("ebay-secret") && !shown.contains("shpat"),
            "{shown}"
        );
    }

    #[test]
    fn missing_settings_and_credentials_name_the_field() {
        let topology = Topology::from_toml_str(TOPOLOGY).unwrap();
        let err = ChannelConfig::all(&topology, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("channels[0].push.credentials_env") && err.contains("EBAY_TOKEN"),
            "{err}"
        );
        let amazon = TOPOLOGY.replace("kind = \"ebay\"", "kind = \"amazon\"");
        let topology = Topology::from_toml_str(&amazon).unwrap();
        let err = ChannelConfig::all(&topology, &|_| Some("t".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("channels[0].push.seller_id"), "{err}");
        assert!(err.contains("channels[0].push.marketplace_ids"), "{err}");
    }

    #[test]
    fn the_example_topology_can_be_pushed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../topology/retail.example.toml");
        let topology = Topology::load(&path).unwrap();
        assert_eq!(topology.validate_push(), Ok(()));
        let configs = ChannelConfig::all(&topology, &|_| Some("token".into())).unwrap();
        let kinds: Vec<PushKind> = configs.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                PushKind::Amazon,
                PushKind::Walmart,
                PushKind::Shopify,
                PushKind::Ebay
            ]
        );
        assert_eq!(configs[0].marketplace_ids, ["ATVPDKIKX0DER"]);
    }

    /// Issue 18, item 4: the published per-operation limits, and overrides of them by name.
    #[test]
    fn operation_limits_default_to_the_published_ones_and_can_be_overridden() {
        let amazon = TOPOLOGY.replace(
            "kind = \"ebay\"",
            "kind = \"amazon\"\nseller_id = \"A1\"\nmarketplace_ids = [\"ATVPDKIKX0DER\"]\n\
             operation_limits.createFeed = { rate_per_sec = 0.05, burst = 20 }",
        );
        let topology = Topology::from_toml_str(&amazon).unwrap();
        let configs = ChannelConfig::all(&topology, &|_| Some("t".into())).unwrap();
        let published = crate::push::marketplaces::amazon::LIMITS;
        assert_eq!(configs[0].operation_limits.len(), published.len());
        for (rate, limit) in configs[0].operation_limits.iter().zip(published) {
            assert_eq!(rate.operation, limit.operation);
            if rate.operation == "createFeed" {
                assert_eq!((rate.rate_per_sec, rate.burst), (0.05, 20));
            } else {
                assert_eq!(
                    (rate.rate_per_sec, rate.burst),
                    (limit.rate_per_sec, limit.burst)
                );
            }
        }
        // Shopify publishes none here; eBay neither.
        assert!(configs[1].operation_limits.is_empty());
        let unknown = TOPOLOGY.replace(
            "credentials_env = \"EBAY_TOKEN\"",
            "credentials_env = \"EBAY_TOKEN\"\noperation_limits.createFeed = { rate_per_sec = 1.0, burst = 1 }",
        );
        let topology = Topology::from_toml_str(&unknown).unwrap();
        let err = ChannelConfig::all(&topology, &|_| Some("t".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("channels[0].push.operation_limits.createFeed") && err.contains("ebay"),
            "{err}"
        );
    }

    #[test]
    fn file_credentials_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "tok-from-file\n").unwrap();
        let value = format!("file:{}", path.display());
        let creds = Credentials::from_env("T", &|_| Some(value.clone())).unwrap();
        assert_eq!(creds.secret().unwrap().expose(), "tok-from-file");
        assert!(!format!("{creds:?}").contains("tok-from-file"));
        let missing = format!("file:{}", dir.path().join("nope").display());
        assert!(Credentials::from_env("T", &|_| Some(missing.clone())).is_err());
    }
}

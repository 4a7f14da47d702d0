//! Where a query may be forwarded: the strict form of an instance's advertised URL
//! ([`PeerUrl`]) and the hosts this instance forwards to ([`PeerAllow`]).
//!
//! Anyone who can write `<application_id>-instances` can announce any URL, so an announced URL
//! is only ever a base (`http(s)://host[:port]`, nothing else), and a query is only forwarded
//! to a host the operator allowed (`--peer-allow`, `SHELFSYNC_PEER_ALLOW`):
//!
//! - an entry starting with `.` allows every host under that domain
//!   (`.shelfsync.retail.svc` allows `shelfsync-1.shelfsync.retail.svc`, not
//!   `shelfsync.retail.svc` itself nor `evilshelfsync.retail.svc`);
//! - any other entry allows exactly that host name or IP address (`127.0.0.1`, `[::1]` or
//!   `::1`, `shelfsync-0`).
//!
//! Without `--peer-allow` the list is derived from this instance's own advertised host: the
//! host itself and, when it is a DNS name with a dot, every host under its parent domain (the
//! advertised host `shelfsync-0.shelfsync.retail.svc` of `deploy/kubernetes` allows
//! `.shelfsync.retail.svc`, i.e. the pods of the headless service). An IP address, `localhost`
//! or a single-label name allows only itself: instances on one host (`127.0.0.1`) reach each
//! other, instances advertising different IPs need `--peer-allow` to forward. Ports are not
//! restricted. Host names compare case-insensitively.

use std::fmt;
use std::net::IpAddr;

/// The scheme, host and port of an advertised URL, parsed strictly: `http://` or `https://`,
/// a host (DNS name, IPv4 address, or IPv6 address in brackets), an optional port, and at most
/// a trailing `/`. No user info, path, query (`?`) or fragment (`#`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host, lower-cased; an IPv6 address without its brackets.
    pub host: String,
    /// The port when the URL names one.
    pub port: Option<u16>,
}

/// The longest URL accepted (a DNS name is at most 253 characters).
const MAX_URL_LEN: usize = 300;

impl PeerUrl {
    /// Parses `url` strictly (see [`PeerUrl`]).
    ///
    /// # Errors
    /// What is wrong with it, in words that never quote more than the URL itself.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.len() > MAX_URL_LEN {
            return Err(format!("longer than {MAX_URL_LEN} characters"));
        }
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            ("http", rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else {
            return Err("the scheme is not http:// or https://".into());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(c) = authority
            .chars()
            .find(|c| ['/', '?', '#', '@', '\\'].contains(c))
        {
            return Err(format!(
                "only scheme://host[:port] is allowed, found {c:?} (a path, query, fragment or user info)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or("an unclosed [ in the host")?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| "not an IPv6 address in [ ]")?;
            (ip.to_string(), after)
        } else {
            match authority.find(':') {
                Some(i) => (authority[..i].to_ascii_lowercase(), &authority[i..]),
                None => (authority.to_ascii_lowercase(), ""),
            }
        };
        let port = match port {
            "" => None,
            p => {
                let digits = p.strip_prefix(':').ok_or("junk after the host")?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("the port is not a number".into());
                }
                match digits.parse::<u16>() {
                    Ok(p) if p > 0 => Some(p),
                    _ => return Err("the port is not within 1..=65535".into()),
                }
            }
        };
        if !is_host(&host) {
            return Err("the host is not a DNS name or an IP address".into());
        }
        Ok(Self { scheme, host, port })
    }

    /// Whether the host is an IP address.
    pub fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

impl fmt::Display for PeerUrl {
    /// The canonical base URL: `scheme://host[:port]`, IPv6 in brackets, no trailing `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// A DNS name (labels of ASCII letters, digits and `-`, not starting or ending with `-`, at
/// most 63 characters each, 253 in all), an IPv4 address, or an IPv6 address.
fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The hosts a query may be forwarded to (see the module page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAllow {
    /// Hosts allowed exactly (lower-case; IPv6 without brackets).
    exact: Vec<String>,
    /// Domain suffixes, each starting with `.`.
    suffixes: Vec<String>,
}

impl PeerAllow {
    /// Parses a comma-separated list of `.domain` suffixes and exact hosts.
    ///
    /// # Errors
    /// The entry that is neither, in words naming `--peer-allow`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allow = Self {
            exact: Vec::new(),
            suffixes: Vec::new(),
        };
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            if let Some(domain) = entry.strip_prefix('.') {
                if !is_host(domain) || domain.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "--peer-allow (SHELFSYNC_PEER_ALLOW) {entry:?}: a suffix must be `.` and a DNS domain, e.g. .shelfsync.retail.svc"
                    ));
                }
                allow.suffixes.push(entry);
            } else {
                let host = entry
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(&entry);
                let host = match host.parse::<IpAddr>() {
                    Ok(ip) => ip.to_string(),
                    Err(_) if is_host(host) => host.to_string(),
                    Err(_) => {
                        return Err(format!(
                            "--peer-allow (SHELFSYNC_PEER_ALLOW) {entry:?}: expected a host name, an IP address or a .domain suffix"
                        ))
                    }
                };
                allow.exact.push(host);
            }
        }
        if allow.exact.is_empty() && allow.suffixes.is_empty() {
            return Err(
                "--peer-allow (SHELFSYNC_PEER_ALLOW) is empty: name at least one host or .domain"
                    .into(),
            );
        }
        Ok(allow)
    }

    /// The default for an instance advertising `me`: its host and, for a DNS name with a dot,
    /// every host under its parent domain.
    pub fn default_for(me: &PeerUrl) -> Self {
        let mut allow = Self {
            exact: vec![me.host.clone()],
            suffixes: Vec::new(),
        };
        if !me.is_ip() {
            if let Some((_, parent)) = me.host.split_once('.') {
                allow.suffixes.push(format!(".{parent}"));
            }
        }
        allow
    }

    /// Whether a query may be forwarded to `peer`.
    pub fn permits(&self, peer: &PeerUrl) -> bool {
        self.exact.contains(&peer.host)
            || (!peer.is_ip()
                && self
                    .suffixes
                    .iter()
                    .any(|s| peer.host.ends_with(s.as_str())))
    }
}

impl fmt::Display for PeerAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<&str> = self
            .exact
            .iter()
            .chain(&self.suffixes)
            .map(String::as_str)
            .collect();
        f.write_str(&all.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_base_url_parses() {
        let u = PeerUrl::parse("http://Shelfsync-1.shelfsync.retail.svc:9464/").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            ("http", "shelfsync-1.shelfsync.retail.svc", Some(9464))
        );
        assert_eq!(
            u.to_string(),
            "http://shelfsync-1.shelfsync.retail.svc:9464"
        );
        let u = PeerUrl::parse("https://[::1]:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.to_string().as_str()),
            ("::1", "https://[::1]:8443")
        );
        assert!(PeerUrl::parse("http://127.0.0.1").unwrap().is_ip());
        for bad in [
            "http://127.0.0.1:9000/?x=1",
            "http://127.0.0.1:9000?x=1",
            "http://127.0.0.1:9000#frag",
            "http://127.0.0.1:9000/#",
            "http://user:pw@127.0.0.1:9000",
            "http://evil@127.0.0.1",
            "http://127.0.0.1:9000/secret",
            "http://127.0.0.1:9000//",
            "http://127.0.0.1:0",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:+80",
            "http://127.0.0.1:",
            "http://",
            "http:///",
            "http://a..b",
            "http://-a.b",
            "http://a_b",
            "http://[::1",
            "http://[zz]",
            "http://a\\@b",
            "ftp://a",
            "file:///etc/passwd",
            "127.0.0.1:9000",
            "http://a b",
        ] {
            assert!(PeerUrl::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(PeerUrl::parse(&format!("http://{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn the_allow_list_matches_exact_hosts_and_domain_suffixes() {
        let url = |u: &str| PeerUrl::parse(u).unwrap();
        let allow = PeerAllow::parse(" .shelfsync.retail.svc, 10.0.0.7,[::1] ,Other-Host").unwrap();
        assert!(allow.permits(&url("http://shelfsync-2.shelfsync.retail.svc:9464")));
        assert!(allow.permits(&url("http://10.0.0.7:1")));
        assert!(allow.permits(&url("http://[::1]:1")));
        assert!(allow.permits(&url("http://other-host:1")));
        for refused in [
            "http://shelfsync.retail.svc:9464",
            "http://evilshelfsync.retail.svc:9464",
            "http://10.0.0.8:9464",
            "http://127.0.0.1:9464",
            "http://localhost:9464",
        ] {
            assert!(!allow.permits(&url(refused)), "{refused}");
        }
        for bad in ["", " , ", ".", ".10.0.0.1", "a/b", "http://a"] {
            let err = PeerAllow::parse(bad).unwrap_err();
            assert!(err.contains("--peer-allow"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_default_is_the_own_host_and_its_parent_domain() {
        let url = |u: &str| PeerUrl::parse(u).unwrap();
        let k8s = PeerAllow::default_for(&url("http://shelfsync-0.shelfsync.retail.svc:9464"));
        assert_eq!(
            k8s.to_string(),
            "shelfsync-0.shelfsync.retail.svc,.shelfsync.retail.svc"
        );
        assert!(k8s.permits(&url("http://shelfsync-3.shelfsync.retail.svc:9464")));
        assert!(!k8s.permits(&url("http://metadata.google.internal")));
        let local = PeerAllow::default_for(&url("http://127.0.0.1:9464"));
        assert!(local.permits(&url("http://127.0.0.1:1234")));
        for refused in [
            "http://localhost:1234",
            "http://127.0.0.2:1",
            "http://169.254.169.254",
        ] {
            assert!(!local.permits(&url(refused)), "{refused}");
        }
        let pod = PeerAllow::default_for(&url("http://shelfsync-0:9464"));
        assert_eq!(pod.to_string(), "shelfsync-0");
    }
}

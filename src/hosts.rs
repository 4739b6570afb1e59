//! Where credentials may go: the `only_hosts` lists of the middleware and the tower layer, and
//! the plain-HTTP rule.

/// One entry of an `only_hosts` list (the middleware's and the tower layer's).
#[derive(Debug, Clone)]
pub(crate) struct HostPattern {
    /// Lowercase, as `url` prints it (IPv6 in brackets); `None` for an entry that is not a host.
    host: Option<String>,
    port: Option<u16>,
}

impl HostPattern {
    /// The patterns of an `only_hosts` list.
    pub(crate) fn list<I, S>(entries: I) -> std::sync::Arc<[Self]>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .map(|entry| Self::new(entry.as_ref()))
            .collect()
    }

    pub(crate) fn new(entry: &str) -> Self {
        let parsed = url::Url::parse(&format!("http://{}/", entry.trim()))
            .ok()
            .filter(|url| url.username().is_empty() && url.password().is_none())
            .filter(|url| url.path() == "/" && url.query().is_none());
        match parsed {
            Some(url) => Self {
                host: url.host_str().map(str::to_owned),
                port: url.port(),
            },
            None => Self {
                host: None,
                port: None,
            },
        }
    }

    /// Whether a request to `host` on `port` (its scheme's default when not given) matches.
    pub(crate) fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let Some(own) = &self.host else {
            return false;
        };
        own.eq_ignore_ascii_case(host) && (self.port.is_none() || self.port == port)
    }
}

/// Whether credentials may go to `host` over `scheme` at all: never over plain HTTP, except to
/// a loopback address (a local sandbox), the rule the sessions' base URLs follow.
pub(crate) fn secure_enough(scheme: &str, host: &str) -> bool {
    match scheme {
        "https" => true,
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

//! Where a session's credentials may go: the one rule that `send()`, `authorize()`, `api()`, the
//! reqwest middleware and the tower layer all ask, and the way a URL is named in an error.
//!
//! A request gets the credentials when its scheme is `https` (or plain `http` to a loopback
//! address, or anywhere with `danger_accept_plain_http`) and its host is one the session's
//! credentials are for: the base URL's own origin (host and port), the hosts the vendor documents
//! for the service's other APIs when the base URL is the vendor's own, and the hosts the
//! builder names (`credential_hosts`).

use std::sync::Arc;

use crate::error::{Error, Service};

/// One entry of a host list: `api.example.com` (any port), `api.example.com:8443` (that port),
/// `*.example.com` (any host below `example.com`, not `example.com` itself), an IP address
/// (`127.0.0.1`, `[::1]`), each with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    /// Lowercase, as `url` prints it (IPv6 in brackets), without the `*.` of a wildcard.
    host: String,
    /// The entry was `*.host`.
    below: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// The pattern an entry describes, or `None` for one that is not a host (a URL with a path,
    /// a user, a query; an empty entry; a wildcard that is not a leading `*.`).
    pub(crate) fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (below, rest) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        if rest.is_empty() || rest.contains(['*', '/', '?', '#', '@']) {
            return None;
        }
        // The port is split off by hand: a URL parser drops a scheme's default port, and
        // `host:80` must mean port 80, not any port.
        let (host, port) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let (address, after) = bracketed.split_once(']')?;
                (&rest[..address.len() + 2], after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some(port) => Some(port.parse::<u16>().ok()?),
            None if rest.ends_with(']') || !rest.contains(':') => None,
            None => return None,
        };
        let host = url::Host::parse(host).ok()?;
        // A wildcard names a domain: not an address.
        if below && !matches!(host, url::Host::Domain(_)) {
            return None;
        }
        Some(Self {
            host: host.to_string(),
            below,
            port,
        })
    }

    /// The entries of a list that are hosts; the others match nothing.
    #[cfg(any(feature = "middleware", feature = "tower"))]
    pub(crate) fn list<I, S>(entries: I) -> Arc<[Self]>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .filter_map(|entry| Self::parse(entry.as_ref()))
            .collect()
    }

    /// Exactly `url`'s host and port (its scheme's default when it names none).
    fn origin_of(url: &url::Url) -> Option<Self> {
        Some(Self {
            host: url.host_str()?.to_ascii_lowercase(),
            below: false,
            port: url.port_or_known_default(),
        })
    }

    /// Whether a request to `host` on `port` matches.
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let port_ok = self.port.is_none() || self.port == port;
        let host_ok = if self.below {
            host.len() > self.host.len() + 1
                && host[host.len() - self.host.len()..].eq_ignore_ascii_case(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            // url prints a special scheme's host in lowercase, as the pattern is kept: the
            // byte comparison settles the usual case.
            host == self.host || host.eq_ignore_ascii_case(&self.host)
        };
        host_ok && port_ok
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.below {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// What the rule says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The request gets the credentials.
    Carry,
    /// The request goes to a host the credentials are not for (or to an unknown one).
    Elsewhere,
    /// The request goes to one of the hosts, but the credentials would travel in plain text.
    PlainText,
    /// The request's scheme is neither `https` nor `http`.
    Scheme,
}

/// Where one session's credentials may go.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    hosts: Arc<[HostPattern]>,
    /// `danger_accept_plain_http`: plain `http` to any host.
    plain_http: bool,
}

/// Whether `host` is a loopback address, where plain `http` stays on the machine.
fn loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url`'s host is a loopback address: [`loopback`] of its host, from the host `url`
/// already parsed rather than by parsing its text again. The same answer for every URL whose
/// scheme is `http` (the only one asked): url parses such a host as an address whenever it
/// is one, so a name is never an address's text.
fn loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => loopback(name),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether credentials may travel over `scheme` to `host` at all.
fn transport_verdict(scheme: &str, host: &str, plain_http: bool) -> Verdict {
    transport_verdict_with(scheme, plain_http, || loopback(host))
}

/// [`transport_verdict`], with the host's loopback test asked only of plain `http`.
fn transport_verdict_with(
    scheme: &str,
    plain_http: bool,
    loopback: impl FnOnce() -> bool,
) -> Verdict {
    match scheme {
        "https" => Verdict::Carry,
        "http" if plain_http || loopback() => Verdict::Carry,
        "http" => Verdict::PlainText,
        _ => Verdict::Scheme,
    }
}

impl Scope {
    /// The scope of a session at `base`: its origin, the vendor's `documented` hosts, and the
    /// hosts the builder `named`.
    pub(crate) fn new(
        base: &url::Url,
        documented: &[&str],
        named: &[HostPattern],
        plain_http: bool,
    ) -> Self {
        let hosts = HostPattern::origin_of(base)
            .into_iter()
            .chain(
                documented
                    .iter()
                    .filter_map(|entry| HostPattern::parse(entry)),
            )
            .chain(named.iter().cloned())
            .collect();
        Self { hosts, plain_http }
    }

    /// The same transport rule with other hosts (the middleware's and tower layer's
    /// `only_hosts`).
    #[cfg(any(feature = "middleware", feature = "tower"))]
    pub(crate) fn with_hosts(&self, hosts: Arc<[HostPattern]>) -> Self {
        Self {
            hosts,
            plain_http: self.plain_http,
        }
    }

    /// The hosts, for the adapters' `Debug`.
    #[cfg(any(feature = "middleware", feature = "tower"))]
    pub(crate) fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// What the rule says of a request to `scheme://host:port` (the scheme's default port when
    /// `port` is `None`). Without a scheme or a host nothing can be said of where it goes:
    /// [`Verdict::Elsewhere`]. The tower layer's, on an `http::Uri`; the sessions and the
    /// middleware judge a parsed URL ([`Self::judge_url`]).
    #[cfg(any(feature = "tower", test))]
    pub(crate) fn judge(
        &self,
        scheme: Option<&str>,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Verdict {
        let (Some(scheme), Some(host)) = (scheme, host) else {
            return Verdict::Elsewhere;
        };
        self.judge_host(scheme, host, port, || loopback(host))
    }

    /// [`Self::judge`] of a request whose scheme and host are known, `loopback` telling
    /// whether the host is a loopback address.
    fn judge_host(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
        loopback: impl FnOnce() -> bool,
    ) -> Verdict {
        let port = port.or(match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        });
        if !self.hosts.iter().any(|pattern| pattern.matches(host, port)) {
            return Verdict::Elsewhere;
        }
        transport_verdict_with(scheme, self.plain_http, loopback)
    }

    /// [`Self::judge`] of a URL.
    pub(crate) fn judge_url(&self, url: &url::Url) -> Verdict {
        let Some(host) = url.host_str() else {
            return Verdict::Elsewhere;
        };
        self.judge_host(url.scheme(), host, url.port(), || loopback_url(url))
    }

    /// `Ok` when a request of the caller's to `url` may carry the credentials, else the
    /// configuration error that says why, before anything is sent.
    pub(crate) fn check(&self, service: Service, url: &url::Url) -> Result<(), Error> {
        match self.judge_url(url) {
            Verdict::Carry => Ok(()),
            verdict => self.refusal(service, verdict, url.host_str()),
        }
    }

    /// The error a verdict other than [`Verdict::Carry`] earns, for a request to `host`.
    pub(crate) fn refusal(
        &self,
        service: Service,
        verdict: Verdict,
        host: Option<&str>,
    ) -> Result<(), Error> {
        let message = match verdict {
            Verdict::Carry => return Ok(()),
            Verdict::Elsewhere => format!(
                "the request goes to {}, which is not among the hosts this session's credentials \
                 are for ({}): name it with credential_hosts(…) on the builder",
                host.map_or_else(|| "no host".to_owned(), |h| format!("host {h}")),
                self.hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Verdict::PlainText => "the request's URL is plain HTTP to a host that is not \
                                   loopback: the session does not put its credentials on it \
                                   (danger_accept_plain_http allows it)"
                .to_owned(),
            Verdict::Scheme => "the request's URL has a scheme other than https and http: the \
                                session puts its credentials only on https (or loopback http) \
                                requests"
                .to_owned(),
        };
        Err(Error::configuration(Some(service), message))
    }
}

/// A URL as an error may name it: scheme, host, port and path, never a user, a password, a
/// query or a fragment (any of which may hold a secret).
pub(crate) fn describe(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

/// An entry of a host list as an error may name it: quoted, unless it has what a URL carries a
/// secret in (a user, a query or a fragment, as [`describe`] leaves out); then by its place in
/// the list (`place` counts from 1).
pub(crate) fn describe_entry(entry: &str, place: usize) -> String {
    if entry.contains(['@', '?', '#']) {
        format!("entry {place} (a URL with a user, a query or a fragment)")
    } else {
        format!("{entry:?}")
    }
}

/// A base URL checked by the rule of base URLs: it parses, carries no user, password, query or
/// fragment, and its scheme is `https` (or plain `http` to loopback, or anywhere with
/// `plain_http`). No error quotes what the URL holds beyond [`describe`].
pub(crate) fn base_url(service: Service, text: &str, plain_http: bool) -> Result<url::Url, Error> {
    let bad = |why: String| Error::configuration(Some(service), why);
    // url's parse errors name the fault, never the input: the text may hold a password.
    let url = url::Url::parse(text).map_err(|e| bad(format!("the base URL is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!(
            "the base URL {} carries a username or password: credentials go in the builder's \
             setters, never in a URL (it would be logged, and sent to whatever it points to)",
            describe(&url)
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "the base URL {} must not have a query or fragment",
            describe(&url)
        )));
    }
    let Some(host) = url.host_str() else {
        return Err(bad(format!("the base URL {} has no host", describe(&url))));
    };
    match transport_verdict(url.scheme(), host, plain_http) {
        Verdict::Carry => Ok(url),
        Verdict::PlainText => Err(bad(format!(
            "the base URL {} is plain HTTP: credentials would travel unencrypted (allowed only \
             for loopback addresses, or with danger_accept_plain_http)",
            describe(&url)
        ))),
        _ => Err(bad(format!(
            "the base URL {} has scheme {:?}; https is required",
            describe(&url),
            url.scheme()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(base: &str, documented: &[&str], named: &[&str]) -> Scope {
        let named: Vec<_> = named.iter().filter_map(|e| HostPattern::parse(e)).collect();
        Scope::new(&url::Url::parse(base).unwrap(), documented, &named, false)
    }

    fn judge(scope: &Scope, url: &str) -> Verdict {
        scope.judge_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn the_base_url_s_origin_to_the_port_and_the_documented_and_named_hosts_are_in_scope() {
        let base = scope("https://auth.example.com/v1", &[], &[]);
        let named = scope(
            "https://auth.example.com",
            &["api.example.com"],
            &["*.example.org", "data.example.net:8443", "[::1]"],
        );
        let urls = [
            "https://auth.example.com/other?q=1",
            "https://AUTH.example.com:443/",
            "https://auth.example.com:8443/",
            "https://api.example.com/x",
            "https://example.com/",
            "http://auth.example.com/",
            "https://a.b.example.org/x",
            "https://example.org/x",
            "https://badexample.org/x",
            "https://data.example.net:8443/",
            "https://data.example.net/",
            "http://[::1]:9000/",
        ];
        // Each scope carries the credentials to these and sends every other URL elsewhere.
        let carried = |scope: &Scope| {
            let verdicts = urls.map(|url| (url, judge(scope, url)));
            assert!(verdicts
                .iter()
                .all(|(_, v)| matches!(v, Verdict::Carry | Verdict::Elsewhere)));
            verdicts
                .into_iter()
                .filter_map(|(url, v)| (v == Verdict::Carry).then_some(url))
                .collect::<Vec<_>>()
        };
        // The origin to the port: not :8443, not port 80's plain http.
        assert_eq!(
            carried(&base),
            [
                "https://auth.example.com/other?q=1",
                "https://AUTH.example.com:443/"
            ]
        );
        // Wildcards stop at their dot; a named port is that port only; loopback may be http.
        assert_eq!(
            carried(&named),
            [
                "https://auth.example.com/other?q=1",
                "https://AUTH.example.com:443/",
                "https://api.example.com/x",
                "https://a.b.example.org/x",
                "https://data.example.net:8443/",
                "http://[::1]:9000/",
            ]
        );
    }

    #[test]
    fn plain_http_and_other_schemes_are_refused_in_scope() {
        let s = scope("https://auth.example.com", &[], &["api.example.com"]);
        assert_eq!(judge(&s, "http://api.example.com/"), Verdict::PlainText);
        assert_eq!(judge(&s, "ftp://api.example.com/"), Verdict::Scheme);
        let allowed = Scope::new(
            &url::Url::parse("https://auth.example.com").unwrap(),
            &[],
            &[HostPattern::parse("api.example.com").unwrap()],
            true,
        );
        assert_eq!(judge(&allowed, "http://api.example.com/"), Verdict::Carry);
        assert_eq!(
            s.judge(None, Some("api.example.com"), None),
            Verdict::Elsewhere
        );
        assert_eq!(s.judge(Some("https"), None, None), Verdict::Elsewhere);
    }

    #[test]
    fn a_url_is_judged_as_its_scheme_host_and_port_are() {
        // `judge_url` tests loopback on the host url parsed; `judge` (the tower layer's, on an
        // `http::Uri`) parses the host's text. They must agree on every URL.
        let named = [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "localhost",
            "[::1]",
            "[::2]",
            "[::ffff:127.0.0.1]",
            "api.example.com",
        ];
        for plain_http in [false, true] {
            let named: Vec<_> = named.iter().filter_map(|e| HostPattern::parse(e)).collect();
            let s = Scope::new(
                &url::Url::parse("https://auth.example.com").unwrap(),
                &[],
                &named,
                plain_http,
            );
            let mut seen = Vec::new();
            for url in [
                "http://127.0.0.1:8080/x",
                "http://127.1.2.3/x",
                "http://0x7f.1/x",
                "http://2130706433/x",
                "http://10.0.0.1/x",
                "http://localhost:9000/x",
                "http://LOCALHOST/x",
                "http://[::1]:9000/x",
                "http://[0:0:0:0:0:0:0:1]/x",
                "http://[::2]/x",
                "http://[::ffff:127.0.0.1]/x",
                "http://api.example.com/x",
                "https://api.example.com/x",
                "https://API.Example.com/x",
                "ftp://api.example.com/x",
                "http://other.example.com/x",
                "unix:/run/socket",
            ] {
                let parsed = url::Url::parse(url).unwrap();
                let by_text = s.judge(Some(parsed.scheme()), parsed.host_str(), parsed.port());
                let verdict = s.judge_url(&parsed);
                assert_eq!(verdict, by_text, "{url} (plain_http: {plain_http})");
                if !seen.contains(&verdict) {
                    seen.push(verdict);
                }
            }
            // Every verdict is among the cases, so the agreement is not that of a constant.
            let expected = if plain_http { 3 } else { 4 };
            assert_eq!(seen.len(), expected, "{seen:?}");
        }
        let loopback_http = |url: &str| {
            let s = scope("https://auth.example.com", &[], &["127.1.2.3", "[::1]"]);
            judge(&s, url)
        };
        assert_eq!(loopback_http("http://127.1.2.3/x"), Verdict::Carry);
        assert_eq!(loopback_http("http://[::1]/x"), Verdict::Carry);
    }

    #[test]
    fn entries_that_are_not_hosts_match_nothing() {
        for entry in [
            "",
            "https://a.example.com",
            "a.example.com/x",
            "u@a.example.com",
            "*",
            "*.",
            "a.*.com",
            "*.127.0.0.1",
        ] {
            assert_eq!(HostPattern::parse(entry), None, "{entry:?}");
        }
        assert_eq!(
            HostPattern::parse(" API.Example.com:80 ")
                .unwrap()
                .to_string(),
            "api.example.com:80"
        );
    }

    #[test]
    fn base_url_errors_never_quote_a_user_a_password_a_query_or_a_fragment() {
        let cases = [
            "https://alice5:hunter2@auth.example.com/",
            "https://auth.example.com/?api_key=hunter2",
            "https://auth.example.com/#hunter2",
            "http://auth.example.com/?api_key=hunter2",
            "ftp://alice5:hunter2@auth.example.com/",
            "not a url hunter2",
            "https://alice5:hunter2@[bad",
        ];
        for case in cases {
            let error = base_url(Service::Fib, case, false).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("hunter2"), "{case}: {shown}");
            assert!(!shown.contains("alice5"), "{case}: {shown}");
        }
        assert!(base_url(Service::Fib, "http://127.0.0.1:8080/x", false).is_ok());
        assert!(base_url(Service::Fib, "http://10.0.0.1/x", true).is_ok());
    }
}

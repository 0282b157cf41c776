//! Where requests may come from: the `Host` and `Origin` checks that keep
//! web pages on other sites out, run first on every request (by the
//! pipeline's first stage, [`super::pipeline`]), before the token or
//! anything else is read.
//!
//! # Why
//!
//! - **Cross-site requests.** CORS only stops a page from *reading*
//!   answers. A page's `fetch(url, {method: "POST", mode: "no-cors", body})`
//!   with a `text/plain` body is a "simple" request: the browser sends it
//!   without asking first, and the server would act on it. Browsers name
//!   the page's origin in `Origin` on every such request, so a request
//!   whose `Origin` is neither the server's own nor one allowed by
//!   `--cors-origin` is refused (403) before anything happens. Clients
//!   that are not browsers (curl, the Python and Node.js clients) send no
//!   `Origin` and are not affected.
//! - **DNS rebinding.** A page on `http://evil.example:8000` can make
//!   `evil.example` resolve to 127.0.0.1; its requests are then
//!   same-origin to the browser and reach a server on loopback. They still
//!   carry `Host: evil.example:8000`, which no legitimate client of a
//!   loopback server sends: such a server answers only to `localhost`,
//!   `*.localhost`, IP literals and the names given by `--allowed-host`.
//!
//! # The rules
//!
//! - Host check: on when the server listens on a loopback address or
//!   `--allowed-host` names hosts; off when it listens on another address
//!   (0.0.0.0: it is reached under names it cannot know) without
//!   `--allowed-host`, and off with `--allowed-host '*'`. IP literals always
//!   pass: a rebinding attack needs a DNS name. A request without `Host`
//!   (HTTP/1.0) passes: browsers always send one.
//! - Origin check: a request without `Origin` passes. One with `Origin`
//!   passes if it is the server's own (scheme http or https, and the same
//!   host and port as the request's `Host`; or a host named by
//!   `--allowed-host`, as behind a reverse proxy that rewrites `Host`), or
//!   is named by `--cors-origin` (`*`: any). Anything else, `null`
//!   included, is refused.

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{HOST, ORIGIN};

use super::error::ApiError;

/// The checks, configured once at start.
#[derive(Debug, Clone, Default)]
pub struct SiteCheck {
    /// Whether `Host` is checked at all.
    check_host: bool,
    /// `--allowed-host` names, lowercased, without `*`.
    allowed_hosts: Vec<String>,
    /// `--cors-origin *`.
    any_origin: bool,
    /// `--cors-origin` origins, lowercased, without a trailing slash.
    cors_origins: Vec<String>,
}

/// Why a request was refused; the client's own header is quoted back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteRefusal {
    Host(String),
    Origin(String),
}

impl SiteCheck {
    /// The checks of a server listening on `listening` with these flags.
    pub fn new(listening: IpAddr, allowed_hosts: &[String], cors_origins: &[String]) -> Self {
        let any_host = allowed_hosts.iter().any(|h| h.trim() == "*");
        SiteCheck {
            check_host: !any_host && (listening.is_loopback() || !allowed_hosts.is_empty()),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| normalize_host(h.trim()))
                .filter(|h| h != "*")
                .collect(),
            any_origin: cors_origins.iter().any(|o| o.trim() == "*"),
            cors_origins: cors_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether the Host check is on.
    pub fn checks_host(&self) -> bool {
        self.check_host
    }

    /// Refuses a request from a foreign host name or a foreign page.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        // Borrowed, not copied, when valid UTF-8: no allocation per request.
        let host = headers
            .get(HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()));
        if let Some(host) = host.as_deref().filter(|_| self.check_host)
            && !self.host_allowed(host)
        {
            return Err(ApiError::Site(SiteRefusal::Host(host.to_owned())));
        }
        match headers.get(ORIGIN) {
            None => Ok(()),
            Some(origin) => {
                let origin = String::from_utf8_lossy(origin.as_bytes());
                if self.origin_allowed(&origin, host.as_deref()) {
                    Ok(())
                } else {
                    Err(ApiError::Site(SiteRefusal::Origin(origin.into_owned())))
                }
            }
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, _)) = split_authority(host) else {
            return false;
        };
        name.parse::<IpAddr>().is_ok() || is_localhost(name) || self.is_allowed_host(name)
    }

    fn is_allowed_host(&self, name: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        if self.cors_origins.contains(&origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false; // `null`, or not an origin at all
        };
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let Some((origin_name, origin_port)) = split_authority(authority) else {
            return false;
        };
        if self.is_allowed_host(origin_name) {
            return true;
        }
        let Some((host_name, host_port)) = host.and_then(split_authority) else {
            return false;
        };
        origin_name.eq_ignore_ascii_case(host_name)
            && origin_port.unwrap_or(default_port) == host_port.unwrap_or(default_port)
    }
}

/// `localhost` and its subdomains, which browsers resolve to loopback
/// themselves (RFC 6761), whatever the DNS says.
fn is_localhost(name: &str) -> bool {
    const LOCALHOST: &str = "localhost";
    let Some(start) = name.len().checked_sub(LOCALHOST.len()) else {
        return false;
    };
    name.is_char_boundary(start)
        && name[start..].eq_ignore_ascii_case(LOCALHOST)
        && (start == 0 || name.as_bytes()[start - 1] == b'.')
}

/// `host[:port]` (or `[v6]:port`) into the host, without brackets or a
/// final dot, and the port; `None` if it is not an authority. Names are
/// compared ignoring ASCII case.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.trim();
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        (name, after)
    } else {
        match authority.rsplit_once(':') {
            Some((name, _)) => (name, &authority[name.len()..]),
            None => (authority, ""),
        }
    };
    let port = match port {
        "" => None,
        port => Some(port.strip_prefix(':')?.parse().ok()?),
    };
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    Some((name, port))
}

fn normalize_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl SiteRefusal {
    /// The answer's message.
    pub fn detail(&self) -> String {
        match self {
            SiteRefusal::Host(host) => Self::host_message(&format!("{host:?}")),
            SiteRefusal::Origin(origin) => Self::origin_message(&format!("{origin:?}")),
        }
    }

    /// The message with the header described, not quoted.
    pub fn diagnostic(&self) -> String {
        match self {
            SiteRefusal::Host(host) => Self::host_message(&super::error::describe_text(host)),
            SiteRefusal::Origin(origin) => {
                Self::origin_message(&super::error::describe_text(origin))
            }
        }
    }

    fn host_message(host: &str) -> String {
        format!(
            "the Host header ({host}) is not a name of this server: a server on loopback \
             answers only to localhost and IP addresses, against DNS rebinding. If clients \
             reach it under that name (a reverse proxy, a DNS name), start it with \
             --allowed-host NAME"
        )
    }

    fn origin_message(origin: &str) -> String {
        format!(
            "cross-site request refused: a web page from origin {origin} may not call this \
             server. Pages of the server's own origin may; allow another site with \
             --cors-origin ORIGIN"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(HOST, host.parse().unwrap());
        }
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    fn loopback(allowed: &[&str], cors: &[&str]) -> SiteCheck {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        SiteCheck::new("127.0.0.1".parse().unwrap(), &owned(allowed), &owned(cors))
    }

    #[test]
    fn a_loopback_server_answers_to_its_own_names_only() {
        let check = loopback(&["kv.example.com"], &[]);
        for host in [
            "localhost",
            "localhost:8000",
            "LocalHost.:8000",
            "app.localhost:3000",
            "127.0.0.1:8000",
            "127.0.0.1",
            "[::1]:8000",
            "[::1]",
            "10.1.2.3:80",
            "kv.example.com",
            "KV.example.com:443",
        ] {
            assert!(check.check(&headers(Some(host), None)).is_ok(), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "example.com",
            "",
            "[::1",
            "localhost:port",
        ] {
            assert!(check.check(&headers(Some(host), None)).is_err(), "{host}");
        }
        assert!(check.check(&headers(None, None)).is_ok(), "HTTP/1.0");
    }

    #[test]
    fn all_interfaces_check_no_host_unless_told() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let evil = headers(Some("evil.example"), None);
        assert!(SiteCheck::new(any, &[], &[]).check(&evil).is_ok());
        let named = SiteCheck::new(any, &["kv.example.com".into()], &[]);
        assert!(named.check(&evil).is_err());
        assert!(named.check(&headers(Some("kv.example.com"), None)).is_ok());
        let star = loopback(&["*"], &[]);
        assert!(!star.checks_host());
        assert!(star.check(&evil).is_ok());
    }

    #[test]
    fn only_the_servers_own_origin_and_cors_origins_pass() {
        let check = loopback(&["kv.example.com"], &["https://app.example/"]);
        for (host, origin) in [
            ("127.0.0.1:8000", "http://127.0.0.1:8000"),
            ("localhost:8000", "http://localhost:8000"),
            ("localhost", "http://localhost"),
            ("localhost:80", "http://localhost"),
            ("[::1]:8000", "http://[::1]:8000"),
            ("127.0.0.1:8000", "https://app.example"),
            // Behind a proxy that sends its upstream's address as Host.
            ("127.0.0.1:8000", "https://kv.example.com"),
        ] {
            assert!(
                check.check(&headers(Some(host), Some(origin))).is_ok(),
                "{host} {origin}"
            );
        }
        for (host, origin) in [
            ("127.0.0.1:8000", "https://evil.example"),
            ("127.0.0.1:8000", "http://127.0.0.1:8001"),
            ("127.0.0.1:8000", "http://localhost:8000"),
            ("127.0.0.1:8000", "null"),
            ("127.0.0.1:8000", "file://"),
            ("127.0.0.1:8000", "ftp://127.0.0.1:8000"),
            ("127.0.0.1:8000", "http://app.example"),
            ("127.0.0.1:8000", "https://app.example.evil.example"),
            ("localhost:443", "http://localhost"),
        ] {
            assert!(
                check.check(&headers(Some(host), Some(origin))).is_err(),
                "{host} {origin}"
            );
        }
        let any = loopback(&[], &["*"]);
        assert!(any.check(&headers(Some("localhost"), Some("null"))).is_ok());
    }
}

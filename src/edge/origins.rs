//! `http.allowed_origins`: the web pages (origins, `scheme://host[:port]`) that may use the
//! engine from a browser — open its WebSockets and read its answers (CORS). A browser lets any
//! page open a WebSocket to any host, carrying the user's network position and cookies, and tells
//! the server only through `Origin`; so the engine checks it. The engine's own pages (the same
//! host and port as the request's `Host`) are always allowed, a request without `Origin` is no
//! browser's and is allowed, `"*"` allows every origin, and the default (an empty list) allows
//! only the same origin.

use std::fmt;

/// An origin, normalised: lower-case scheme and host, the scheme's default port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    /// `None` only for a scheme whose default port is unknown and that named none.
    port: Option<u16>,
}

/// Why a `http.allowed_origins` entry is refused; names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not an origin like https://rooms.example or http://localhost:3000 (scheme, \
     host and optional port; no path, no trailing slash), nor \"*\""
)]
pub(crate) struct BadOrigin {
    entry: String,
}

/// The origins a browser page may come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowedOrigins {
    any: bool,
    listed: Vec<Origin>,
}

impl AllowedOrigins {
    /// `"*"` or origins; the first entry that is neither is the error.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadOrigin> {
        let mut allowed = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                allowed.any = true;
                continue;
            }
            let origin = Origin::parse(entry).ok_or_else(|| BadOrigin {
                entry: entry.to_owned(),
            })?;
            allowed.listed.push(origin);
        }
        Ok(allowed)
    }

    /// Whether a request that says it comes from the page `origin` (its `Origin` header) and was
    /// sent to `host` (its `Host` header) may go on: the same host and port, a listed origin, or
    /// any with `"*"`. An `Origin` that is no origin (`null`, from sandboxed frames and files)
    /// is allowed only with `"*"`.
    pub(crate) fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        self.listed.contains(&origin) || host.is_some_and(|h| origin.is_served_by(h))
    }

    /// For the start-up log.
    pub(crate) fn describe(&self) -> String {
        if self.any {
            return "any origin".into();
        }
        let mut names = vec!["the same origin".to_owned()];
        names.extend(self.listed.iter().map(Origin::to_string));
        names.join(", ")
    }
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        let (host, port) = split_authority(authority)?;
        let port = port.or_else(|| default_port(&scheme));
        Some(Self { scheme, host, port })
    }

    /// Whether a request whose `Host` is `host` went to this origin's host and port (the scheme
    /// cannot be told behind a TLS terminator, so it is not compared).
    fn is_served_by(&self, host: &str) -> bool {
        match split_authority(host) {
            Some((name, port)) => {
                name == self.host && port.or_else(|| default_port(&self.scheme)) == self.port
            }
            None => false,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => write!(f, ":{port}"),
            _ => Ok(()),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (a bracketed IPv6 host included) into the lower-case host and the port; `None`
/// for anything else (a path, user info, an empty host, a bad port).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !host_ok {
            return None;
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(entries).unwrap()
    }

    #[test]
    fn the_default_allows_the_same_host_and_port_only() {
        let same = allowed(&[]);
        assert!(same.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(same.allows("https://Rooms.Example", Some("rooms.example")));
        assert!(same.allows("https://rooms.example", Some("rooms.example:443")));
        assert!(same.allows("http://[::1]:8080", Some("[::1]:8080")));
        assert!(!same.allows("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!same.allows("http://evil.example", Some("rooms.example")));
        assert!(
            !same.allows("http://rooms.example", None),
            "no Host, no proof"
        );
        assert!(!same.allows("null", Some("rooms.example")));
        assert!(!same.allows("http://rooms.example/path", Some("rooms.example")));
    }

    #[test]
    fn listed_origins_and_the_wildcard() {
        let list = allowed(&["https://app.example", "http://localhost:3000"]);
        assert!(list.allows("https://app.example", Some("api.example")));
        assert!(list.allows("https://app.example:443", Some("api.example")));
        assert!(list.allows("http://LOCALHOST:3000", Some("api.example")));
        assert!(!list.allows("http://localhost:3001", Some("api.example")));
        assert!(
            !list.allows("http://app.example", Some("api.example")),
            "scheme counts"
        );
        assert!(
            list.allows("https://api.example", Some("api.example")),
            "same origin"
        );
        let any = allowed(&["*"]);
        assert!(any.allows("null", None) && any.allows("http://x.example", None));
        assert_eq!(any.describe(), "any origin");
        assert_eq!(
            list.describe(),
            "the same origin, https://app.example, http://localhost:3000"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "rooms.example",
            "https://rooms.example/",
            "https://rooms.example/app",
            "https://user@rooms.example",
            "https://rooms.example:99999",
            "https://",
            "null",
            "*.example.com",
            "1https://x",
        ] {
            let error = AllowedOrigins::parse(&[bad]).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}

//! The HTTP side of the viewer that is not about runs: what a request is, what a reply is, the
//! `Host` check against DNS rebinding, and query strings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// What the router needs of a request.
pub struct Request<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The path, percent-encoded, without the query.
    pub path: &'a str,
    /// The decoded query parameters; the last of repeated keys wins.
    pub query: HashMap<String, String>,
}

impl<'a> Request<'a> {
    /// Splits `url` (path and query, as on the request line).
    pub fn new(method: &'a str, url: &'a str) -> Request<'a> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request { method, path, query: parse_query(query) }
    }

    /// A query parameter, if given and not empty.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|value| !value.is_empty())
    }
}

/// A reply: status, content type and body. Security headers are added when it is sent.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Whether the browser may keep it (embedded assets) or must ask again (API answers).
    pub cacheable: bool,
}

impl Reply {
    /// A JSON answer with status 200.
    pub fn json(value: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply { status: 200, content_type: "application/json", body, cacheable: false },
            Err(error) => Reply::error(500, &format!("cannot encode the answer: {error}")),
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Reply {
        let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
        Reply { status, content_type: "application/json", body, cacheable: false }
    }

    /// An embedded asset.
    pub fn asset(content_type: &'static str, body: &[u8]) -> Reply {
        Reply { status: 200, content_type, body: body.to_vec(), cacheable: true }
    }
}

/// The headers every reply carries: no sniffing, no framing, no referrer, and a content
/// security policy that allows only this server's own scripts.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
];

/// The `Host` values a request may carry, for a server bound to `bound`.
///
/// A DNS rebinding attack makes a browser send requests to this server under the attacker's
/// domain name, so names other than `localhost` are refused. A loopback server accepts its own
/// address and `localhost`; a server bound to all interfaces (`0.0.0.0`, `::`) accepts any IP
/// address literal, since a rebinding attack cannot produce one, and `localhost`. The port, when
/// given, must be the bound one.
pub struct HostCheck {
    bound: SocketAddr,
}

impl HostCheck {
    pub fn new(bound: SocketAddr) -> HostCheck {
        HostCheck { bound }
    }

    /// Whether `host` (the `Host` header's value) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let (name, port) = split_host(host);
        if port.is_some_and(|port| port != self.bound.port()) {
            return false;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let Ok(address) = name.parse::<IpAddr>() else { return false };
        if self.bound.ip().is_unspecified() {
            return true;
        }
        address == self.bound.ip() || (self.bound.ip().is_loopback() && address.is_loopback())
    }
}

/// `name` and port of a `Host` value: `localhost:6006`, `[::1]:6006`, `127.0.0.1`. A port that
/// does not parse reads as port 0, which no server binds.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, port)) => (name, Some(port.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(0))),
            None => (host, Some(0)),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port.parse().unwrap_or(0))),
        _ => (host, None),
    }
}

/// `a=1&b=x%2Fy` as a map; `+` is a space, bad escapes stay as they are.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// Percent-decodes `text` (and `+` as space); invalid UTF-8 is replaced, so the result is
/// always checked by the validator of whatever it names.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(index + 1).copied().and_then(hex), bytes.get(index + 2).copied().and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    index += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_server_accepts_its_address_and_localhost_with_its_port_only() {
        let check = HostCheck::new("127.0.0.1:6006".parse().unwrap());
        for host in ["127.0.0.1:6006", "localhost:6006", "LOCALHOST:6006", "localhost", "[::1]:6006", "127.0.0.1"] {
            assert!(check.allows(host), "{host}");
        }
        for host in
            ["evil.example:6006", "localhost:80", "127.0.0.1:6007", "10.0.0.1:6006", "", "localhost.evil:6006", "[::1"]
        {
            assert!(!check.allows(host), "{host}");
        }
    }

    #[test]
    fn a_server_on_all_interfaces_accepts_address_literals_but_no_other_names() {
        let check = HostCheck::new("0.0.0.0:8080".parse().unwrap());
        assert!(check.allows("192.168.1.5:8080"));
        assert!(check.allows("localhost:8080"));
        assert!(!check.allows("attacker.example:8080"));
        assert!(!check.allows("192.168.1.5:9090"));
    }

    #[test]
    fn queries_are_percent_decoded() {
        let query = parse_query("metric=eval%2Floss&q=a+b&bad=%zz&tail=%4");
        assert_eq!(query["metric"], "eval/loss");
        assert_eq!(query["q"], "a b");
        assert_eq!(query["bad"], "%zz");
        assert_eq!(query["tail"], "%4");
        assert_eq!(decode("%C3%A9"), "é");
    }
}

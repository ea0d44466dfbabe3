//! The client's address behind reverse proxies: [`client_address`] reads `X-Forwarded-For`
//! (or RFC 7239 `Forwarded`) only when the TCP peer is a [`TrustedProxy`].
//!
//! A header is a chain of addresses, each proxy appending the address it received the request
//! from. Anything left of the first proxy we trust was written by the client and can be a lie,
//! so the chain is read from the right: the peer, then each address a trusted proxy appended,
//! until the first address that is not a trusted proxy. That one is the client.
//!
//! `X-Forwarded-For` is read when present, `Forwarded` otherwise: nginx and Caddy both set
//! `X-Forwarded-For` on every request and pass a client's own `Forwarded` through untouched,
//! so preferring `X-Forwarded-For` keeps a forged `Forwarded` from counting. A proxy that sets
//! only `Forwarded` must drop a client's `X-Forwarded-For`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;

/// A network whose addresses are reverse proxies allowed to say who the client is: an address
/// with a prefix length (`10.0.0.0/8`, `fd00::/8`), or one address (`192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a [`TrustedProxy`] does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid trusted proxy '{given}': {reason} (expected an address or CIDR such as 10.0.0.0/8 or fd00::/8)"
)]
pub struct TrustedProxyError {
    given: String,
    reason: &'static str,
}

impl TrustedProxy {
    /// Whether `address` is in this network. An IPv4 address written as IPv6
    /// (`::ffff:10.0.0.1`) is compared as IPv4.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => prefix_matches(
                network.to_bits().into(),
                address.to_bits().into(),
                32,
                self.prefix_len,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                prefix_matches(network.to_bits(), address.to_bits(), 128, self.prefix_len)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix_len` of `bits` high bits of two numbers agree.
fn prefix_matches(network: u128, address: u128, bits: u8, prefix_len: u8) -> bool {
    let host_bits = u32::from(bits - prefix_len);
    network.checked_shr(host_bits).unwrap_or(0) == address.checked_shr(host_bits).unwrap_or(0)
}

impl FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    fn from_str(given: &str) -> Result<TrustedProxy, TrustedProxyError> {
        let error = |reason| TrustedProxyError {
            given: given.to_owned(),
            reason,
        };
        let (address, prefix_len) = match given.trim().split_once('/') {
            Some((address, prefix_len)) => (
                address,
                Some(
                    prefix_len
                        .parse::<u8>()
                        .map_err(|_| error("the prefix length is not a number"))?,
                ),
            ),
            None => (given.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| error("not an IP address"))?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(bits);
        if prefix_len > bits {
            return Err(error("the prefix length is longer than the address"));
        }
        let proxy = TrustedProxy {
            network,
            prefix_len,
        };
        if host_bits_set(network, prefix_len) {
            return Err(error("the address has bits set after the prefix"));
        }
        Ok(proxy)
    }
}

/// Whether `address` has any bit set after its first `prefix_len` bits.
fn host_bits_set(address: IpAddr, prefix_len: u8) -> bool {
    let (bits, width): (u128, u8) = match address {
        IpAddr::V4(address) => (address.to_bits().into(), 32),
        IpAddr::V6(address) => (address.to_bits(), 128),
    };
    let host_bits = u32::from(width - prefix_len);
    host_bits > 0 && bits & (u128::MAX.checked_shr(128 - host_bits).unwrap_or(0)) != 0
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy, else the right-most
/// address of the forwarding chain that is not a trusted proxy (see the module documentation).
/// A chain of trusted proxies only gives its left-most address; an entry that is not an
/// address (`unknown`, an obfuscated name) ends the walk at the proxy that wrote it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|proxy| proxy.contains(address));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let chain = forwarding_chain(headers);
    for entry in chain.iter().rev() {
        let Some(address) = parse_node(entry) else {
            return client;
        };
        client = address;
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// The chain's entries, left to right: every `X-Forwarded-For` header's, or when there is
/// none, every `Forwarded` element's `for=` value.
fn forwarding_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .flat_map(|value| {
                value
                    .split(',')
                    .map(|entry| entry.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<String>>()
    };
    let forwarded_for = values("x-forwarded-for");
    if !forwarded_for.is_empty() {
        return forwarded_for;
    }
    values(FORWARDED.as_str())
        .iter()
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().trim_matches('"').to_owned())
                })
                // An element without `for=` says nothing about the client: it ends the walk.
                .unwrap_or_default()
        })
        .collect()
}

/// One chain entry as an address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<IpAddr>()
        .ok()
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_refuses_nonsense() {
        let proxy: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(proxy.contains(ip("10.200.3.4")));
        assert!(proxy.contains(ip("::ffff:10.1.2.3")));
        assert!(!proxy.contains(ip("11.0.0.1")));
        assert!(!proxy.contains(ip("fd00::1")));
        let one: TrustedProxy = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let everything: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "example.com",
            "10.0.0.0/x",
            "::/129",
        ] {
            let error = bad.parse::<TrustedProxy>().unwrap_err().to_string();
            assert!(error.contains(&format!("'{bad}'")), "{error}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let spoof = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            client_address(ip("203.0.113.5"), &spoof, &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("203.0.113.5"), &spoof, &[]),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn takes_the_right_most_untrusted_address() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.7"]);
        let peer = ip("10.0.0.2");
        // The client wrote "1.1.1.1" itself; the border proxy appended the real peer.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.5, 192.0.2.7")]);
        assert_eq!(client_address(peer, &chain, &trusted), ip("203.0.113.5"));
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.5:4711"),
        ]);
        assert_eq!(client_address(peer, &split, &trusted), ip("203.0.113.5"));
        let all_trusted = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(client_address(peer, &all_trusted, &trusted), ip("10.1.1.1"));
        let garbage = headers(&[("x-forwarded-for", "203.0.113.5, unknown")]);
        assert_eq!(client_address(peer, &garbage, &trusted), peer);
        assert_eq!(client_address(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn reads_forwarded_when_there_is_no_x_forwarded_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        let forwarded = headers(&[(
            "forwarded",
            "for=1.1.1.1, For=\"[2001:db8:cafe::17]:4711\";proto=https",
        )]);
        assert_eq!(
            client_address(peer, &forwarded, &trusted),
            ip("2001:db8:cafe::17")
        );
        let both = headers(&[
            ("forwarded", "for=1.1.1.1"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(client_address(peer, &both, &trusted), ip("203.0.113.5"));
        let hidden = headers(&[("forwarded", "for=_hidden;proto=https")]);
        assert_eq!(client_address(peer, &hidden, &trusted), peer);
    }
}

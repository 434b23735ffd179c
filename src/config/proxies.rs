//! `TRUSTED_PROXIES`: the reverse proxies whose `X-Forwarded-For` is
//! believed when finding the client's address
//! ([`ClientIp`](crate::http::ClientIp)).
//!
//! Behind a reverse proxy every TCP peer is the proxy, so every user would
//! share one bucket; in front of none, `X-Forwarded-For` is whatever the
//! client wrote, so believing it would let anyone pick a fresh bucket per
//! request. The header is therefore read only when the peer is one of
//! `TRUSTED_PROXIES`, and then from the right: each trusted proxy appends
//! the address it received from, so the first untrusted address from the
//! right is the one no client can forge.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::http::HeaderMap;

/// One trusted address or network: `10.0.0.0/8`, `::1`, `192.168.1.7/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// True when the first `prefix` of the `width` low bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let ignored = u32::from(width - prefix);
    a.checked_shr(ignored).unwrap_or(0) == b.checked_shr(ignored).unwrap_or(0)
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a CIDR network");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr.trim())
            .map_err(|_| bad())?
            .to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => width,
        };
        if prefix > width {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed
/// (`TRUSTED_PROXIES`); none by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[Network]>);

impl TrustedProxies {
    /// Parses comma-separated IPs and CIDR networks; empty trusts none.
    pub fn parse(spec: &str) -> Result<Self, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Network::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(|networks| Self(networks.into()))
    }

    /// True when `ip` is one of them.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then
    /// the first untrusted address of `X-Forwarded-For` from the right. If
    /// every hop is trusted, the leftmost; if a hop is not an address, the
    /// trusted proxy that reported it (nothing left of it can be believed).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::TrustedProxies;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        headers
    }

    fn client(trusted: &str, peer: &str, forwarded: &[&str]) -> String {
        let trusted = TrustedProxies::parse(trusted).expect("valid proxies");
        trusted
            .client_ip(peer.parse().expect("an address"), &headers(forwarded))
            .to_string()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(client("", "203.0.113.9", &["1.2.3.4"]), "203.0.113.9");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client("10.0.0.0/8", "203.0.113.9", &["1.2.3.4"]),
            "203.0.113.9"
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        // A client that forged a leftmost entry still lands on its own address.
        let forwarded = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(client("10.0.0.0/8", "10.0.0.1", &forwarded), "198.51.100.7");
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.1", &["10.9.9.9, 10.0.0.2"]),
            "10.9.9.9"
        );
    }

    #[test]
    fn a_garbled_hop_stops_at_the_proxy_that_reported_it() {
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.1", &["1.2.3.4, junk, 10.0.0.2"]),
            "10.0.0.2"
        );
        assert_eq!(client("127.0.0.1", "127.0.0.1", &[]), "127.0.0.1");
    }

    #[test]
    fn ports_ipv6_and_mapped_addresses_are_understood() {
        assert_eq!(client("::1", "::1", &["[2001:db8::5]:443"]), "2001:db8::5");
        assert_eq!(
            client("127.0.0.1", "::ffff:127.0.0.1", &["192.0.2.1:80"]),
            "192.0.2.1"
        );
        assert_eq!(
            client("2001:db8::/32", "2001:db8:1::1", &["192.0.2.1"]),
            "192.0.2.1"
        );
    }

    #[test]
    fn networks_match_on_their_prefix_only() {
        let trusted = TrustedProxies::parse("192.168.0.0/16, 0.0.0.0/0").expect("valid");
        assert!(trusted.trusts("8.8.8.8".parse().expect("ip")));
        let trusted = TrustedProxies::parse("192.168.0.0/16").expect("valid");
        assert!(trusted.trusts("192.168.200.1".parse().expect("ip")));
        assert!(!trusted.trusts("192.169.0.1".parse().expect("ip")));
        assert!(!trusted.trusts("::1".parse().expect("ip")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for spec in ["10.0.0.0/33", "nonsense", "::1/129", "10.0.0.1/x"] {
            assert!(TrustedProxies::parse(spec).is_err(), "{spec}");
        }
        assert_eq!(
            TrustedProxies::parse(" , ").expect("empty"),
            TrustedProxies::default()
        );
    }
}

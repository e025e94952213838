//! The client's address behind reverse proxies (`--trusted-proxies`).
//!
//! A proxy appends the address it received a request from to
//! `X-Forwarded-For`, so the header reads `client, proxy1, proxy2` and only
//! its right end can be believed: anything to the left of the first hop that
//! is not one of ours was written by someone we do not trust. So, only when
//! the peer is a trusted proxy, the client is the rightmost address of
//! `X-Forwarded-For` that is not itself a trusted proxy (the rule of nginx's
//! `real_ip_recursive` and of RFC 7239 §7.4's advice); otherwise the peer.
//! The exchange rate limiter and the audit log use this address.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed; empty by default.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8,192.0.2.7`: CIDRs or single addresses, comma-separated.
    pub fn parse(text: &str) -> anyhow::Result<TrustedProxies> {
        let nets = crate::federation::netguard::parse_cidrs(text)
            .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        Ok(TrustedProxies { nets })
    }

    /// True when no proxy is trusted (the peer is always the client).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                // An entry we cannot read was written by someone untrusted:
                // the proxy that passed it on is as far as we can see.
                None => return client,
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        return ip;
                    }
                }
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`1.2.3.4:5`, `[::1]:5`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.5"), &headers(&["1.2.3.4"])),
            ip("10.0.0.5")
        );
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            t.client(ip("192.0.2.1"), &headers(&["1.2.3.4"])),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        // client spoofs 6.6.6.6; the first proxy appended the real 203.0.113.9.
        let h = headers(&["6.6.6.6, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(t.client(ip("192.168.1.7"), &h), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.2.2.2"), &HeaderMap::new()), ip("10.2.2.2"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            t.client(ip("10.2.2.2"), &headers(&["10.3.3.3,10.4.4.4"])),
            ip("10.3.3.3")
        );
        // Garbage to the right of the chain stops it at the proxy that sent it.
        assert_eq!(
            t.client(ip("10.2.2.2"), &headers(&["203.0.113.9, nonsense"])),
            ip("10.2.2.2")
        );
        // Ports and IPv4-mapped peers.
        assert_eq!(
            t.client(ip("::ffff:10.0.0.1"), &headers(&["203.0.113.9:443"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["[2001:db8::1]:80"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn bad_cidrs_are_refused_by_name() {
        let e = TrustedProxies::parse("10.0.0.0/33").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}

//! The client's address: the socket peer's, or the one a trusted proxy put in a header.
//!
//! Behind nginx every request comes from nginx's address, so the address that rate limits and
//! the access log need is in a header nginx sets (`X-Forwarded-For`, `X-Real-IP`). A client can
//! set such headers too, so they are believed only when the peer is one of
//! `server.trusted_proxies`; with none configured (the default) the peer's address is used and
//! the headers are ignored.
//!
//! `X-Forwarded-For` is a list each proxy appends the address it received from to. It is read
//! from the right: trusted proxies are skipped, and the first address that is not one is the
//! client (whatever a client wrote further left is its own claim and ignored). An entry that is
//! not an address ends the walk at the last hop believed.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a block of one).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Who may tell us the client's address, and in which header.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: HeaderName,
}

impl TrustedProxies {
    /// From `server.trusted_proxies` and `server.client_ip_header` (entries that do not parse
    /// are skipped: the configuration was validated before).
    pub fn new(nets: &[String], header: &str) -> Self {
        let header = HeaderName::try_from(header).unwrap_or(actix_web::http::header::X_FORWARDED_FOR);
        TrustedProxies { nets: nets.iter().filter_map(|n| parse_net(n)).collect(), header }
    }

    /// True when `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Several header lines count as one list, in order.
        let entries: Vec<&str> = headers
            .get_all(&self.header)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_hop(entry) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One entry of a forwarding header: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:80`).
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HeaderName::from_static(name), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let t = TrustedProxies::new(&[], "X-Forwarded-For");
        let h = headers("x-forwarded-for", &["9.9.9.9"]);
        assert_eq!(t.client_addr(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_an_address() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into()], "X-Forwarded-For");
        let h = headers("x-forwarded-for", &["9.9.9.9"]);
        assert_eq!(t.client_addr(ip("192.0.2.7"), &h), ip("192.0.2.7"));
    }

    #[test]
    fn the_list_is_read_from_the_right_past_trusted_hops() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into(), "127.0.0.1".into()], "X-Forwarded-For");
        // The client claimed 6.6.6.6; nginx appended the address it saw, then an inner proxy.
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.5", "10.1.2.3"]);
        assert_eq!(t.client_addr(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // Only trusted hops: the leftmost one.
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.1.2.3"]);
        assert_eq!(t.client_addr(ip("127.0.0.1"), &h), ip("10.0.0.9"));
        // No header: the peer.
        assert_eq!(t.client_addr(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // Garbage stops the walk at the last hop believed.
        let h = headers("x-forwarded-for", &["6.6.6.6, not-an-ip, 10.1.2.3"]);
        assert_eq!(t.client_addr(ip("127.0.0.1"), &h), ip("10.1.2.3"));
    }

    #[test]
    fn a_single_address_header_and_ports_and_mapped_addresses() {
        let t = TrustedProxies::new(&["::1".into(), "127.0.0.0/8".into()], "X-Real-IP");
        let h = headers("x-real-ip", &["[2001:db8::1]:443"]);
        assert_eq!(t.client_addr(ip("::1"), &h), ip("2001:db8::1"));
        // An IPv4 peer seen on an IPv6 socket is still that IPv4 address.
        let h = headers("x-real-ip", &["198.51.100.1:5000"]);
        assert_eq!(t.client_addr(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.1"));
        // The other header is not read.
        let h = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(t.client_addr(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn nets_parse() {
        assert!(parse_net("10.0.0.0/8").is_some());
        assert!(parse_net(" 192.168.1.1 ").is_some());
        assert!(parse_net("fd00::/8").is_some());
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("nginx").is_none());
    }
}

//! `http.trusted_proxies`: the CIDR blocks of the reverse proxies in front of the engine. Behind
//! a proxy every request comes from the proxy's address, so the per-address rate limit would put
//! all clients in one bucket; the proxy says who its client was in `X-Forwarded-For`. Anybody can
//! write that header, so it is believed only from a peer in one of these blocks, and only as far
//! as trusted hops vouch for it: the client is the right-most address that is not itself a
//! trusted proxy (everything left of it was written by that client and proves nothing).
//! Empty (the default) trusts nobody: the TCP peer is the client.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

/// One CIDR block: a network address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a `http.trusted_proxies` entry is refused; names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not a CIDR block like 10.0.0.0/8, 127.0.0.1/32 or fd00::/8: {why}")]
pub(crate) struct BadCidr {
    entry: String,
    why: String,
}

impl Cidr {
    /// `address/prefix`, or a bare address (a block of one).
    pub(crate) fn parse(text: &str) -> Result<Self, BadCidr> {
        let bad = |why: String| BadCidr {
            entry: text.to_owned(),
            why,
        };
        let trimmed = text.trim();
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| bad(format!("{address:?} is not an IP address")))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => {
                    return Err(bad(format!(
                        "the prefix length must be a number from 0 to {bits}"
                    )))
                }
            },
        };
        Ok(Self { network, prefix })
    }

    /// Whether `addr` is in the block (an IPv4 address given as IPv4-mapped IPv6 counts as the
    /// IPv4 address: dual-stack sockets report IPv4 peers that way).
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    /// Every entry must be a block; the first one that is not is the error.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadCidr> {
        let blocks = entries
            .iter()
            .map(|e| Cidr::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { blocks })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(addr))
    }

    /// The client behind a request from `peer` carrying the `X-Forwarded-For` header values
    /// `forwarded_for` (in the order they came; each a comma-separated list of hops, oldest
    /// first). From an untrusted peer the header is ignored. Walking from the right, trusted
    /// hops are passed over; the first untrusted one is the client. A hop that is not an
    /// address ends the walk at the last address that could be vouched for; a chain of nothing
    /// but trusted hops yields its left-most one.
    pub(crate) fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let values: Vec<&str> = forwarded_for.into_iter().collect();
        let hops = values
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty());
        let mut client = peer;
        for hop in hops {
            let Some(addr) = parse_hop(hop) else { break };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }

    /// The blocks, for the start-up log.
    pub(crate) fn describe(&self) -> String {
        let blocks: Vec<String> = self.blocks.iter().map(Cidr::to_string).collect();
        blocks.join(", ")
    }
}

/// One hop of `X-Forwarded-For`: an address, or an address with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped counts");
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.7")) && !all.contains(ip("::1")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_blocks_name_the_entry() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "nonsense",
            "10.0.0.0/",
            "10.0.0/8",
            "",
        ] {
            let error = Cidr::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
        let error = TrustedProxies::parse(&["10.0.0.0/8", "1.2.3.4/99"]).unwrap_err();
        assert!(error.to_string().contains("1.2.3.4/99"), "{error}");
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), ["1.2.3.4"]), ip("127.0.0.1"));
        let proxies = TrustedProxies::parse(&["127.0.0.1/32", "10.0.0.0/8"]).unwrap();
        assert_eq!(proxies.client(ip("8.8.8.8"), ["1.2.3.4"]), ip("8.8.8.8"));
        assert_eq!(proxies.client(ip("127.0.0.1"), ["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), ["1.2.3.4"]),
            ip("1.2.3.4")
        );
        // No header: the proxy itself.
        assert_eq!(proxies.client(ip("127.0.0.1"), []), ip("127.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["127.0.0.1/32", "10.0.0.0/8"]).unwrap();
        let peer = ip("127.0.0.1");
        // What the client wrote itself (left) proves nothing.
        assert_eq!(
            proxies.client(peer, ["6.6.6.6, 1.2.3.4, 10.0.0.5"]),
            ip("1.2.3.4")
        );
        // Several headers are one list, in order.
        assert_eq!(
            proxies.client(peer, ["6.6.6.6", "1.2.3.4:5678", "10.0.0.5"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            proxies.client(peer, ["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(proxies.client(peer, ["10.0.0.9, 10.0.0.5"]), ip("10.0.0.9"));
        // Garbage ends the walk at the last hop that could vouch for it.
        assert_eq!(
            proxies.client(peer, ["1.2.3.4, unknown, 10.0.0.5"]),
            ip("10.0.0.5")
        );
        assert_eq!(proxies.client(peer, ["garbage"]), peer);
        assert_eq!(proxies.client(peer, [" , ,"]), peer);
    }
}

//! Which addresses fedgate may fetch an issuer's keys from. An org admin
//! chooses the issuer URL, so without this rule fedgate would fetch any URL
//! for them (SSRF): the cloud metadata service, an internal admin page, a
//! database port. Private, loopback, link-local, metadata and other
//! non-public addresses are refused unless `--allow-private-issuers` lists
//! them.
//!
//! The check runs on the addresses DNS returned, inside the HTTP client's
//! resolver ([`GuardedResolver`]): the connection is made to exactly the
//! addresses that passed, so a second, different DNS answer (rebinding)
//! never reaches a socket. Hosts written as IP literals skip DNS and are
//! checked by [`AddressPolicy::check_host`], for every redirect too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

/// The addresses an operator allowed beside the public internet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

/// Loopback, what `--allow-insecure-issuers` (http:// to loopback hosts,
/// for development) allows as well: its only use is a local IdP.
pub fn loopback_nets() -> Vec<IpNet> {
    let v4 = IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8)
        .unwrap_or_else(|_| host_net(Ipv4Addr::LOCALHOST.into()));
    vec![v4, host_net(Ipv6Addr::LOCALHOST.into())]
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Parses `--allow-private-issuers`: comma-separated CIDRs or single
/// addresses, e.g. `10.0.0.0/8,fd00::/8,192.168.1.20`.
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(host_net))
                .map_err(|_| format!("{s:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address"))
        })
        .collect()
}

/// Why an address is not public, in words an admin can act on.
fn category(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => category_v4(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            if v6.is_loopback() {
                return Some("loopback");
            }
            // fd00:ec2::254, the AWS instance metadata service over IPv6.
            if seg == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
                return Some("cloud metadata");
            }
            // IPv4-mapped, NAT64 and 6to4 addresses carry an IPv4 address:
            // judge that one (::ffff:127.0.0.1 is loopback).
            let v4 =
                |a: u16, b: u16| Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
            match seg {
                [0, 0, 0, 0, 0, 0xffff, a, b] | [0x64, 0xff9b, 0, 0, 0, 0, a, b] => {
                    return category_v4(v4(a, b));
                }
                [0x2002, a, b, ..] => return category_v4(v4(a, b)),
                // Deprecated IPv4-compatible form: never a route of its own.
                [0, 0, 0, 0, 0, 0, a, b] => {
                    return Some(category_v4(v4(a, b)).unwrap_or("reserved (IPv4-compatible)"));
                }
                _ => {}
            }
            match seg[0] {
                s if s & 0xffc0 == 0xfe80 => Some("link-local"),
                s if s & 0xffc0 == 0xfec0 => Some("site-local"),
                s if s & 0xfe00 == 0xfc00 => Some("private (unique local)"),
                s if s & 0xff00 == 0xff00 => Some("multicast"),
                0x2001 if seg[1] == 0x0db8 => Some("documentation"),
                0x0100 if seg[1..4] == [0, 0, 0] => Some("reserved (discard)"),
                _ => None,
            }
        }
    }
}

fn category_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        // AWS/GCP/Azure (169.254.169.254), ECS tasks (169.254.170.2),
        // Alibaba (100.100.100.200), Oracle (192.0.0.192).
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200) | (192, 0, 0, 192) => {
            "cloud metadata"
        }
        (0, ..) => "unspecified (\"this network\")",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, ..) => "private",
        (172, b, ..) if (16..32).contains(&b) => "private",
        (169, 254, ..) => "link-local",
        (100, b, ..) if (64..128).contains(&b) => "shared address space (carrier-grade NAT)",
        (192, 0, 0, _) => "reserved (IETF protocol assignments)",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "documentation",
        (198, b, ..) if b == 18 || b == 19 => "reserved (benchmarking)",
        (255, 255, 255, 255) => "broadcast",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

/// An address the policy refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host == self.ip.to_string() {
            String::new()
        } else {
            format!("{} resolves to ", self.host)
        };
        write!(
            f,
            "{host}{}, a {} address: fedgate does not fetch from non-public addresses unless the operator allows them with --allow-private-issuers",
            self.ip, self.why
        )
    }
}

impl std::error::Error for Refused {}

impl AddressPolicy {
    /// Public addresses, plus `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        AddressPolicy { allowed }
    }

    /// Whether fedgate may connect to `ip`. Cloud metadata addresses are
    /// allowed only when listed one by one (a /32 or /128), never by a
    /// range that happens to contain them.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let Some(why) = category(ip) else {
            return Ok(());
        };
        let ip = canonical(ip);
        let allowed = self.allowed.iter().any(|net| {
            net.contains(&ip)
                && (why != "cloud metadata" || net.prefix_len() == net.max_prefix_len())
        });
        if allowed {
            Ok(())
        } else {
            Err(Refused {
                host: host.to_owned(),
                ip,
                why,
            })
        }
    }

    /// The check for a URL host written as an IP literal (DNS names are
    /// checked by the resolver).
    pub fn check_host(&self, host: &url::Host<&str>) -> Result<(), Refused> {
        let ip = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(*ip),
            url::Host::Ipv6(ip) => IpAddr::V6(*ip),
            url::Host::Domain(_) => return Ok(()),
        };
        self.check(&canonical(ip).to_string(), ip)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so an allowed IPv4 range covers it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How a host name becomes addresses: the system's resolver in production
/// ([`system_lookup`]), a scripted one in tests (e.g. a rebinding DNS).
pub type Lookup = Arc<
    dyn Fn(
            String,
        )
            -> futures::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>>
        + Send
        + Sync,
>;

/// The system's resolver (getaddrinfo on a blocking thread, as reqwest's own).
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

/// The HTTP client's DNS resolver: the looked-up answer, minus every
/// address the policy refuses. The client connects only to what this
/// returns, so the address checked is the address used (no DNS rebinding).
#[derive(Clone)]
pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
    pub lookup: Lookup,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        let lookup = (self.lookup)(host.clone());
        Box::pin(async move {
            let addrs = lookup.await?;
            let (ok, refused) = filter(&policy, &host, addrs);
            match (ok.is_empty(), refused) {
                (false, _) => Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs),
                (true, Some(r)) => Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>),
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

/// The addresses that pass, and the first refusal (for the error when none does).
fn filter(
    policy: &AddressPolicy,
    host: &str,
    addrs: Vec<std::net::SocketAddr>,
) -> (Vec<std::net::SocketAddr>, Option<Refused>) {
    let mut refused = None;
    let ok = addrs
        .into_iter()
        .filter(|a| match policy.check(host, a.ip()) {
            Ok(()) => true,
            Err(r) => {
                refused.get_or_insert(r);
                false
            }
        })
        .collect();
    (ok, refused)
}

/// The [`Refused`] somewhere in an error's source chain (reqwest wraps the
/// resolver's error in its own).
pub fn find_refused(e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let p = AddressPolicy::default();
        for (addr, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.170.2", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("192.0.0.192", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("fd12:3456::1", "private (unique local)"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("::", "unspecified"),
            ("100.64.0.1", "shared address space (carrier-grade NAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            let err = p.check("h", ip(addr)).unwrap_err();
            assert_eq!(err.why, why, "{addr}");
            assert!(err.to_string().contains("--allow-private-issuers"), "{err}");
        }
        for public in [
            "8.8.8.8",
            "140.82.112.3",
            "172.32.0.1",
            "2606:4700::1111",
            "100.128.0.1",
        ] {
            assert!(p.check("h", ip(public)).is_ok(), "{public}");
        }
    }

    #[test]
    fn allowed_ranges_but_metadata_only_by_exact_address() {
        let p = AddressPolicy::new(parse_cidrs("10.0.0.0/8, 169.254.0.0/16 ,fd00::/8").unwrap());
        assert!(p.check("h", ip("10.9.8.7")).is_ok());
        assert!(p.check("h", ip("::ffff:10.9.8.7")).is_ok());
        assert!(p.check("h", ip("169.254.1.1")).is_ok());
        assert_eq!(
            p.check("h", ip("169.254.169.254")).unwrap_err().why,
            "cloud metadata"
        );
        assert!(p.check("h", ip("192.168.0.1")).is_err());
        let exact = AddressPolicy::new(parse_cidrs("169.254.169.254").unwrap());
        assert!(exact.check("h", ip("169.254.169.254")).is_ok());
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert!(parse_cidrs("example.com").is_err());
        let lo = AddressPolicy::new(loopback_nets());
        assert!(lo.check("h", ip("127.0.0.2")).is_ok() && lo.check("h", ip("::1")).is_ok());
        assert!(lo.check("h", ip("10.0.0.1")).is_err());
    }

    /// The resolver returns only what passed: a name that resolves to a
    /// public and a private address connects to the public one only, and
    /// one that resolves only to refused addresses is an error naming them.
    #[test]
    fn filtering_keeps_only_checked_addresses() {
        let p = AddressPolicy::default();
        let addrs = vec!["127.0.0.1:0".parse().unwrap(), "8.8.8.8:0".parse().unwrap()];
        let (ok, refused) = filter(&p, "rebind.example", addrs);
        assert_eq!(ok, vec!["8.8.8.8:0".parse().unwrap()]);
        assert_eq!(refused.unwrap().why, "loopback");
        let (ok, refused) = filter(
            &p,
            "meta.example",
            vec!["169.254.169.254:0".parse().unwrap()],
        );
        assert!(ok.is_empty());
        let text = refused.unwrap().to_string();
        assert!(
            text.starts_with("meta.example resolves to 169.254.169.254, a cloud metadata address"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn localhost_is_refused_after_resolution() {
        use reqwest::dns::Resolve as _;
        let r = GuardedResolver {
            policy: Arc::new(AddressPolicy::default()),
            lookup: system_lookup(),
        };
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolved to an allowed address"),
            Err(e) => e,
        };
        let refused = find_refused(err.as_ref()).unwrap();
        assert_eq!(refused.why, "loopback");
        let allowed = GuardedResolver {
            policy: Arc::new(AddressPolicy::new(loopback_nets())),
            lookup: system_lookup(),
        };
        let addrs: Vec<_> = match allowed.resolve("localhost".parse().unwrap()).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}

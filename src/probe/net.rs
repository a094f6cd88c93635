//! Name resolution and TCP connect, with the deny list enforced on every resolved address and
//! errors sorted into the target's fault and the prober's own.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use ipnet::IpNet;
use tokio::net::{TcpSocket, TcpStream};

use super::{Failure, ProbeContext, trace::Phase, trace::Trace};
use crate::api::Reason;

/// The IPv4 address an IPv6 address reaches, if it embeds one: IPv4-mapped (`::ffff:a.b.c.d`)
/// and IPv4-compatible (`::a.b.c.d`) addresses reach IPv4 hosts directly, NAT64's well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052) through the cluster's NAT64 gateway, and 6to4
/// (`2002:AABB:CCDD::/48`, RFC 3056) through a 6to4 relay. So they are judged as IPv4.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let compatible = o[..12].iter().all(|b| *b == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
    if compatible || nat64 {
        return Some(last);
    }
    (o[..2] == [0x20, 0x02]).then(|| Ipv4Addr::new(o[2], o[3], o[4], o[5]))
}

/// The address as the deny list judges it: the IPv4 address an IPv6 address embeds (see
/// [`embedded_ipv4`]), else the address itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why `ip` may not be dialled, if it may not: unspecified addresses (which reach the local
/// host) always, and every address in the operator's deny list, judged both as written and in
/// canonical form (so `2002::/16` in the list still denies 6to4 addresses).
pub fn denied(ip: IpAddr, ctx: &ProbeContext) -> Option<String> {
    denied_in(ip, &ctx.deny)
}

/// [`denied`] against the deny list `deny` (the status page judges forwarding targets by it).
pub fn denied_in(ip: IpAddr, deny: &[IpNet]) -> Option<String> {
    let canonical = canonical(ip);
    let reaches = if canonical == ip {
        String::new()
    } else {
        format!(" (which reaches {canonical})")
    };
    if canonical.is_unspecified() || ip.is_unspecified() {
        return Some(format!(
            "{ip}{reaches} is the unspecified address, which reaches this host"
        ));
    }
    let net = (deny.iter()).find(|net| net.contains(&canonical) || net.contains(&ip))?;
    Some(format!(
        "{ip}{reaches} is in {net}, which the operator's deny list forbids"
    ))
}

/// `TargetDenied` for `host` (as written) whose address was refused for `why`.
fn denial(host: &str, why: &str) -> Failure {
    let message = if why.starts_with(host) {
        why.to_string()
    } else {
        format!("{host} resolves to {why}")
    };
    Failure::new(Reason::TargetDenied, message)
}

/// Resolves `host:port`, dropping denied addresses; `TargetDenied` when none is left.
pub async fn resolve(
    host: &str,
    port: u16,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<Vec<SocketAddr>, Failure> {
    trace.enter(Phase::Dns);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| {
            match prober_fault(&e)
                .map(str::to_string)
                .or_else(resolver_config_fault)
            {
                Some(what) => Failure::new(
                    Reason::ProberError,
                    format!("cannot resolve {host}: prober {what}: {e}"),
                ),
                None => Failure::new(Reason::DNSError, format!("cannot resolve {host}: {e}")),
            }
        })?
        .collect();
    let mut first_denial = None;
    let allowed: Vec<SocketAddr> = (addrs.into_iter())
        .filter(|addr| match denied(addr.ip(), ctx) {
            Some(why) => {
                first_denial.get_or_insert(why);
                false
            }
            None => true,
        })
        .collect();
    if allowed.is_empty() {
        return Err(match first_denial {
            Some(why) => denial(host, &why),
            None => Failure::new(Reason::DNSError, format!("{host} has no addresses")),
        });
    }
    Ok(allowed)
}

/// Connects to the first address that accepts, in resolver order; every address is checked
/// against the deny list again right before it is dialled.
pub async fn connect(
    addrs: &[SocketAddr],
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<(TcpStream, SocketAddr), Failure> {
    trace.enter(Phase::Connect);
    let mut last = None;
    for &addr in addrs {
        if let Some(why) = denied(addr.ip(), ctx) {
            last = Some(Failure::new(Reason::TargetDenied, why));
            continue;
        }
        match connect_one(addr).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => {
                let failure = classify(&e, &format!("connect to {addr}"));
                if failure.reason == Reason::ProberError {
                    return Err(failure);
                }
                last = Some(failure);
            }
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(Reason::DNSError, "no address to connect to")))
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

/// After a failed lookup: a resolver configuration the prober cannot read is the prober's
/// fault, not the target's (a missing file is fine: the resolver then uses its defaults).
fn resolver_config_fault() -> Option<String> {
    match std::fs::read("/etc/resolv.conf") {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Some(format!("cannot read /etc/resolv.conf ({error})"))
        }
        _ => None,
    }
}

/// Names the prober's own resource exhaustion, which is never the target's fault.
pub fn prober_fault(error: &io::Error) -> Option<&'static str> {
    match error.raw_os_error()? {
        libc_errno::EMFILE => Some("is out of file descriptors (EMFILE)"),
        libc_errno::ENFILE => Some("host is out of file descriptors (ENFILE)"),
        libc_errno::ENOMEM => Some("is out of memory (ENOMEM)"),
        libc_errno::ENOBUFS => Some("is out of socket buffers (ENOBUFS)"),
        _ => None,
    }
}

/// Sorts an I/O error met while doing `what` into a reason.
pub fn classify(error: &io::Error, what: &str) -> Failure {
    if let Some(fault) = prober_fault(error) {
        return Failure::new(Reason::ProberError, format!("{what}: prober {fault}"));
    }
    let reason = match error.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::AddrNotAvailable => Reason::ConnectionRefused,
        io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::ConnectionReset,
    };
    Failure::new(reason, format!("{what}: {error}"))
}

/// Linux errno values (stable ABI), named here to avoid a libc dependency for four numbers.
mod libc_errno {
    pub const ENOMEM: i32 = 12;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOBUFS: i32 = 105;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied_by(ip: &str, deny: &[&str]) -> Option<String> {
        let ctx = ProbeContext::denying(deny.iter().map(|n| n.parse().unwrap()).collect());
        denied(ip.parse().unwrap(), &ctx)
    }

    #[test]
    fn nat64_and_6to4_addresses_are_judged_as_the_ipv4_they_embed() {
        let loopback = ["127.0.0.0/8"];
        for ip in [
            "64:ff9b::7f00:1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
            "2002:7f00:1:ffff::1",
        ] {
            let why = denied_by(ip, &loopback).unwrap_or_else(|| panic!("{ip} allowed"));
            assert!(why.contains("which reaches 127.0.0.1"), "{why}");
        }
        let defaults = ProbeContext::default();
        for metadata in ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1"] {
            assert!(
                denied(metadata.parse().unwrap(), &defaults).is_some(),
                "{metadata}"
            );
        }
        assert!(denied_by("64:ff9b::0.0.0.0", &[]).is_some(), "unspecified");
        // Other addresses in those networks, and a v6 entry naming the prefix itself.
        assert_eq!(denied_by("64:ff9b::a00:1", &loopback), None);
        assert_eq!(denied_by("2002:a00:1::", &loopback), None);
        assert!(denied_by("2002:a00:1::", &["2002::/16"]).is_some());
        assert_eq!(denied_by("2001:db8::7f00:1", &loopback), None);
    }
}

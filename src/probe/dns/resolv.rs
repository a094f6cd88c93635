//! The default DNS server: the first nameserver of the system resolver configuration, read
//! at each probe (so an edited resolv.conf applies), as glibc reads it.

use std::net::IpAddr;

use super::super::Failure;
use crate::api::{DnsTransport, Endpoint, Reason};

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The first `nameserver` of the system configuration; 127.0.0.1 when there is none (the
/// resolver's own default). An unreadable file is the prober's fault.
pub fn system_server(transport: DnsTransport) -> Result<Endpoint, Failure> {
    let text = match std::fs::read_to_string(RESOLV_CONF) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(Failure::new(
                Reason::ProberError,
                format!("no DNS server given and the prober cannot read {RESOLV_CONF}: {error}"),
            ));
        }
    };
    let ip = first_nameserver(&text).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    Ok(Endpoint {
        host: ip.to_string(),
        port: transport.default_port(),
    })
}

/// The first `nameserver` line that holds an IP address. A link-local address with a zone
/// (`fe80::1%eth0`) is passed over: without its zone it cannot be reached, and link-local
/// targets are denied by default anyway.
pub fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with(['#', ';']))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter(|address| !address.contains('%'))
        .find_map(|address| address.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nameserver_as_glibc_reads_it() {
        let conf = "# comment\n; nameserver 9.9.9.9\nsearch svc.cluster.local\nnameserver bogus\n\
                    nameserver fe80::1%eth0\nnameserver 10.96.0.10\n";
        assert_eq!(first_nameserver(conf), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(
            first_nameserver("nameserver 10.96.0.10 \n"),
            Some("10.96.0.10".parse().unwrap())
        );
        assert_eq!(first_nameserver("options ndots:5\n"), None);
    }
}

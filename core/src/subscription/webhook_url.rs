//! Webhook URL validation against SSRF (PROTOCOL §6.2, §12.8).
//!
//! Production URLs must be `https://` to a public host. With the development
//! exception enabled, `http://localhost` and `http://127.0.0.x` are allowed.
//! Literal private, loopback, link-local, unspecified, carrier-grade NAT and
//! cloud metadata addresses are refused, as are `localhost`-style names
//! outside the exception. (Names that *resolve* to such addresses are the
//! native host's job to refuse at connect time.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The parts of a URL the rules look at.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (brackets removed), lower case.
    pub host: String,
}

/// Splits `scheme://host[:port][/path…]`.
pub fn parse(url: &str) -> Option<Target> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') || authority.is_empty() {
        return None; // userinfo is refused: it hides the real host from readers
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    authority
                }
            })
            .to_string()
    };
    if host.is_empty() {
        return None;
    }
    Some(Target {
        scheme,
        host: host.to_ascii_lowercase(),
    })
}

/// Why a URL was refused, or `Ok` when it may receive webhooks.
pub fn check(url: &str, allow_local_development: bool) -> Result<(), &'static str> {
    let t = parse(url).ok_or("is not an absolute http(s) URL")?;
    let local_dev = t.host == "localhost"
        || t.host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[..3] == [127, 0, 0]);
    if local_dev {
        return if allow_local_development && (t.scheme == "http" || t.scheme == "https") {
            Ok(())
        } else {
            Err("targets a local address (allowed only with the local development exception)")
        };
    }
    if t.scheme != "https" {
        return Err("must use https://");
    }
    if t.host.ends_with(".localhost") || t.host.ends_with(".local") || t.host.ends_with(".internal")
    {
        return Err("targets a local network name");
    }
    match t.host.parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => {
            Err("targets a private, loopback, link-local or metadata address")
        }
        _ => Ok(()),
    }
}

/// True for addresses outside every local, private and reserved range.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check("https://worker.example/hooks", false).is_ok());
        assert!(check("http://worker.example/hooks", false).is_err());
        assert!(check("http://10.0.0.1/hook", true).is_err());
        assert!(check("https://10.0.0.1/hook", true).is_err());
        assert!(check("https://192.168.1.4/hook", false).is_err());
        assert!(check("https://169.254.169.254/latest", false).is_err());
        assert!(check("https://[::1]/x", false).is_err());
        assert!(check("https://[fd00::1]/x", false).is_err());
        assert!(check("https://[::ffff:10.0.0.1]/x", false).is_err());
        assert!(check("https://100.64.0.1/x", false).is_err());
        assert!(check("http://localhost:8080/hook", false).is_err());
        assert!(check("http://localhost:8080/hook", true).is_ok());
        assert!(check("http://127.0.0.1:9/hook", true).is_ok());
        assert!(check("http://127.0.1.1:9/hook", true).is_err());
        assert!(check("https://user@evil.example/", false).is_err());
        assert!(check("https://metadata.google.internal/", false).is_err());
        assert!(check("not a url", true).is_err());
        assert!(check("https://8.8.8.8/hook", false).is_ok());
    }
}

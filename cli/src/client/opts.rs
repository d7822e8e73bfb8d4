//! Flag values, parsed the way the docker CLI parses them: Go durations, `key=value` filters and labels,
//! node addresses, CIDR pools and availabilities.
//!
//! The parsers return `Result<_, String>` so that clap can use them as value parsers and print the message.

use skep_api::docker::Availability;
use std::net::IpAddr;

/// The cluster port a node address gets when none is given.
pub const DEFAULT_CLUSTER_PORT: u16 = 2377;

/// Parse a Go duration (`time.ParseDuration`): `"5s"`, `"500ms"`, `"1m30s"`, `"2160h0m0s"`, `"1.5h"`, `"-3us"`, `"0"`.
/// Returns nanoseconds; the error texts are Go's.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let before = s.len();
        let (v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        // (\.[0-9]*)?
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let before = rest.len();
            let (f, sc, rest) = leading_fraction(rest);
            (frac, scale, post) = (f, sc, before != rest.len());
            s = rest;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // unit: everything up to the next '.' or digit
        let i = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let (u, rest) = s.split_at(i);
        s = rest;
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        let mut v = v * unit;
        if frac > 0 {
            // float64 as Go does it; the fraction is below one unit, so it cannot overflow by itself
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// `[0-9]*` at the start of `s`; `None` on overflow past 2⁶³.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let mut x: u64 = 0;
    let end = s
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    for c in s[..end].bytes() {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > 1 << 63 {
            return None;
        }
    }
    Some((x, &s[end..]))
}

/// The digits after a '.', as a value and a scale; digits beyond the precision are dropped (as Go does).
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    let end = s
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    for c in s[..end].bytes() {
        if overflow {
            continue;
        }
        if x > ((1u64 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > 1 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[end..])
}

/// `-f key=value` (docker's `FilterOpt`): the key is trimmed and lower-cased, the value trimmed.
pub fn parse_filter(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "bad format of filter (expected name=value)".to_string())?;
    Ok((k.trim().to_lowercase(), v.trim().to_string()))
}

/// `--label-add k=v` or `k` (docker's `ConvertKVStringsToMap`: a key alone maps to "").
pub fn parse_label(s: &str) -> (String, String) {
    match s.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (s.to_string(), String::new()),
    }
}

/// `--listen-addr` (docker's `NodeAddrOption`): `ip`, `:port`, `ip:port`, `[v6]:port`, optionally `tcp://`;
/// missing parts come from `0.0.0.0:2377`.
pub fn parse_listen_addr(s: &str) -> Result<String, String> {
    let v = s.trim();
    let v = v.strip_prefix("tcp://").unwrap_or(v);
    if v.contains("://") {
        return Err(format!("Invalid proto, expected tcp: {s}"));
    }
    let v = v.trim_end_matches('/');
    if v.contains('/') {
        return Err(format!("Invalid bind address format: {s}"));
    }
    let (host, port) =
        split_host_port(v).ok_or_else(|| format!("Invalid bind address format: {s}"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let port = match port {
        None | Some("") => DEFAULT_CLUSTER_PORT,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port '{p}' in address {s:?}"))?,
    };
    if host.contains(':') {
        Ok(format!("[{host}]:{port}"))
    } else {
        Ok(format!("{host}:{port}"))
    }
}

/// Split `host[:port]`, `[v6][:port]` or a bare IPv6 address.
fn split_host_port(v: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = v.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    if v.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((v, None));
    }
    match v.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((v, None)),
    }
}

/// `--default-addr-pool` (Go's `net.ParseCIDR`, printed back as the network: `10.1.2.3/8` → `10.0.0.0/8`).
pub fn parse_cidr(s: &str) -> Result<String, String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len: u32 = len.parse().map_err(|_| bad())?;
    match ip {
        IpAddr::V4(a) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Ok(format!(
                "{}/{len}",
                std::net::Ipv4Addr::from(u32::from(a) & mask)
            ))
        }
        IpAddr::V6(a) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Ok(format!(
                "{}/{len}",
                std::net::Ipv6Addr::from(u128::from(a) & mask)
            ))
        }
        _ => Err(bad()),
    }
}

/// `--availability` of `swarm init|join`: checked on the client, as docker does (any case).
pub fn availability(s: &str) -> Result<Availability, String> {
    s.to_lowercase().parse().map_err(|_| {
        format!("invalid availability {s:?}, only active, pause and drain are supported")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn go_durations_parse_to_nanoseconds() {
        assert_eq!(parse_go_duration("5s"), Ok(5 * S));
        assert_eq!(parse_go_duration("500ms"), Ok(S / 2));
        assert_eq!(parse_go_duration("1m30s"), Ok(90 * S));
        assert_eq!(parse_go_duration("2160h0m0s"), Ok(2160 * 3600 * S));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400 * S));
        assert_eq!(parse_go_duration(".5s"), Ok(S / 2));
        assert_eq!(parse_go_duration("1.s"), Ok(S));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("7ns"), Ok(7));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("+0"), Ok(0));
        assert_eq!(parse_go_duration("-3s"), Ok(-3 * S));
        assert_eq!(
            parse_go_duration("1h1m1s1ms1us1ns"),
            Ok(3661 * S + 1_001_001)
        );
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert_eq!(parse_go_duration("-2562047h47m16.854775808s"), Ok(i64::MIN));
    }

    #[test]
    fn bad_go_durations_are_refused_with_gos_messages() {
        assert_eq!(
            parse_go_duration(""),
            Err(r#"time: invalid duration """#.to_string())
        );
        assert_eq!(
            parse_go_duration("5"),
            Err(r#"time: missing unit in duration "5""#.to_string())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err(r#"time: unknown unit "x" in duration "5x""#.to_string())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_string())
        );
        assert_eq!(
            parse_go_duration("."),
            Err(r#"time: invalid duration ".""#.to_string())
        );
        assert_eq!(
            parse_go_duration("-"),
            Err(r#"time: invalid duration "-""#.to_string())
        );
        assert_eq!(
            parse_go_duration("1s "),
            Err(r#"time: unknown unit "s " in duration "1s ""#.to_string())
        );
        assert!(
            parse_go_duration("2562047h47m16.854775808s").is_err(),
            "one past i64::MAX"
        );
        assert!(parse_go_duration("99999999999999999999s").is_err());
        assert!(parse_go_duration("3000000h").is_err());
    }

    #[test]
    fn filters_and_labels() {
        assert_eq!(
            parse_filter(" Role = manager "),
            Ok(("role".into(), "manager".into()))
        );
        assert_eq!(
            parse_filter("label=a=b"),
            Ok(("label".into(), "a=b".into()))
        );
        assert!(parse_filter("role").is_err());
        assert_eq!(parse_label("a=b=c"), ("a".into(), "b=c".into()));
        assert_eq!(parse_label("k"), ("k".into(), String::new()));
    }

    #[test]
    fn listen_addresses_get_docker_defaults() {
        assert_eq!(parse_listen_addr("0.0.0.0:2377").unwrap(), "0.0.0.0:2377");
        assert_eq!(
            parse_listen_addr("192.168.1.10").unwrap(),
            "192.168.1.10:2377"
        );
        assert_eq!(parse_listen_addr(":4000").unwrap(), "0.0.0.0:4000");
        assert_eq!(
            parse_listen_addr("tcp://10.0.0.1:5000").unwrap(),
            "10.0.0.1:5000"
        );
        assert_eq!(parse_listen_addr("eth0").unwrap(), "eth0:2377");
        assert_eq!(parse_listen_addr("[::1]:2400").unwrap(), "[::1]:2400");
        assert_eq!(parse_listen_addr("::1").unwrap(), "[::1]:2377");
        assert!(parse_listen_addr("1.2.3.4:x").is_err());
        assert!(parse_listen_addr("udp://1.2.3.4").is_err());
    }

    #[test]
    fn cidr_pools_and_availability() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_cidr("fd00::1/64").unwrap(), "fd00::/64");
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("x/8").is_err());
        assert_eq!(availability("Drain").unwrap(), Availability::Drain);
        assert_eq!(
            availability("gone").unwrap_err(),
            r#"invalid availability "gone", only active, pause and drain are supported"#
        );
    }
}

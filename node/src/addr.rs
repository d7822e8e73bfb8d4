//! Cluster addresses as `swarm init` and `swarm join` take them: `IP`, `IP:port`, or nothing (then the one global
//! address of the host).

use crate::error::{ApiError, ApiResult};
use std::net::{IpAddr, SocketAddr};


/// Parse `IP`, `IP:port` or `0.0.0.0:2377`-style addresses; a bare IP gets `default_port`.
pub fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!("invalid address '{s}': expected IP or IP:port"))
}

/// The IP to advertise when none was given: the listen IP if specific, else the only global address of the host.
pub fn pick_advertise(listen: SocketAddr, given: &str) -> ApiResult<SocketAddr> {
    if !given.is_empty() {
        let a = parse_addr(given, listen.port()).map_err(ApiError::invalid)?;
        if a.ip().is_unspecified() {
            return Err(ApiError::invalid("advertise address must be a non-zero IP address"));
        }
        return Ok(a);
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output();
    let ips: Vec<IpAddr> = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|cidr| cidr.split('/').next())
            .filter_map(|ip| ip.parse().ok())
            .collect(),
        Err(_) => vec![],
    };
    match ips.as_slice() {
        [ip] => Ok(SocketAddr::new(*ip, listen.port())),
        [] => Err(ApiError::invalid("could not choose an IP address to advertise since this system has no global addresses - specify one with --advertise-addr")),
        _ => Err(ApiError::invalid(format!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}) - specify one with --advertise-addr",
            ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_a_default_port() {
        assert_eq!(parse_addr("10.0.0.1", 2377).unwrap().to_string(), "10.0.0.1:2377");
        assert_eq!(parse_addr("10.0.0.1:4000", 2377).unwrap().port(), 4000);
        assert!(parse_addr("nonsense", 2377).is_err());
        assert!(pick_advertise("0.0.0.0:2377".parse().unwrap(), "0.0.0.0").is_err());
        assert_eq!(pick_advertise("10.1.1.1:2377".parse().unwrap(), "").unwrap().to_string(), "10.1.1.1:2377");
    }
}

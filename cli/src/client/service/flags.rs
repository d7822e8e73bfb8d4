//! Flag values of `service create | update`, parsed as docker parses them: memory sizes (go-units `RAMInBytes`),
//! CPU counts (`NanoCPUs`), published ports (short `8080:80/udp` and long `mode=host,target=80,…` syntax),
//! placement preferences, network attachments (`net` or `name=net,alias=web,driver-opt=k=v`), environment entries
//! and shell-like word lists (`--entrypoint`, `--args`).
//!
//! The parsers return `Result<_, String>` so that clap can use them as value parsers and print the message.

use skep_api::docker::{NetworkAttachmentConfig, PlacementPreference, PortConfig, SpreadOver};

/// The ports one `--publish` value stands for (a range gives several).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports(pub Vec<PortConfig>);

/// A word list split like a shell would (`--entrypoint "sh -c"`, `--args "sleep 100"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

/// go-units `RAMInBytes`: `64M`, `1g`, `512MiB`, `1.5GB`, `100` (bytes); binary multiples whatever the spelling.
pub fn parse_mem_bytes(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let sep = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid)?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    if size < 0.0 || size.is_nan() {
        return Err(invalid());
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let bad_suffix = || format!("invalid suffix: '{}'", sfx.to_lowercase());
    if sfx.len() > 3 {
        return Err(bad_suffix());
    }
    let lower = sfx.to_lowercase();
    let b = lower.as_bytes();
    if b[0] == b'b' {
        return if b.len() > 1 {
            Err(bad_suffix())
        } else {
            Ok(size as i64)
        };
    }
    let power = match b[0] {
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        _ => return Err(bad_suffix()),
    };
    match (b.len(), &lower[1..]) {
        (1, _) | (2, "b") | (3, "ib") => {}
        _ => return Err(bad_suffix()),
    }
    Ok((size * 1024f64.powi(power)) as i64)
}

/// docker's `NanoCPUs`: a decimal (`0.5`, `2`) or a fraction (`1/4`) of CPUs, as billionths; more precision than a
/// billionth is refused.
pub fn parse_nano_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let too_precise = || "value is too precise".to_string();
    let t = s.trim();
    if let Some((n, d)) = t.split_once('/') {
        let n: i128 = n.parse().map_err(|_| bad())?;
        let d: i128 = d.parse().map_err(|_| bad())?;
        if d == 0 {
            return Err(bad());
        }
        let scaled = n.checked_mul(1_000_000_000).ok_or_else(bad)?;
        if scaled % d != 0 {
            return Err(too_precise());
        }
        return i64::try_from(scaled / d).map_err(|_| bad());
    }
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(bad());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err(too_precise());
    }
    let int_v: i128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_v: i128 = if frac_trimmed.is_empty() {
        0
    } else {
        format!("{frac_trimmed:0<9}").parse().map_err(|_| bad())?
    };
    let v = int_v
        .checked_mul(1_000_000_000)
        .and_then(|v| v.checked_add(frac_v))
        .ok_or_else(bad)?;
    i64::try_from(if neg { -v } else { v }).map_err(|_| bad())
}

/// `--placement-pref spread=node.labels.zone` (only `spread` exists).
pub fn parse_placement_pref(s: &str) -> Result<PlacementPreference, String> {
    let (strategy, arg) = s.split_once('=').ok_or_else(|| {
        r#"placement preference must be of the format "<strategy>=<arg>""#.to_string()
    })?;
    if !strategy.eq_ignore_ascii_case("spread") {
        return Err(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        ));
    }
    Ok(PlacementPreference {
        spread: Some(SpreadOver {
            spread_descriptor: arg.to_string(),
        }),
    })
}

/// docker's `ValidateEnv`: `K=V` as is; a bare `K` takes its value from the client's environment when set.
pub fn validate_env(s: &str) -> Result<String, String> {
    let (k, has_value) = match s.split_once('=') {
        Some((k, _)) => (k, true),
        None => (s, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {s}"));
    }
    if has_value {
        return Ok(s.to_string());
    }
    Ok(match std::env::var(k) {
        Ok(v) => format!("{k}={v}"),
        Err(_) => s.to_string(),
    })
}

/// The part of an `Env` entry before `=`.
pub fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Split like a POSIX shell (without expansions): blanks separate words, `'…'` is literal, `"…"` allows `\"`,
/// `\\`, `\$` and `` \` ``, and a backslash outside quotes escapes the next character.
pub fn parse_words(s: &str) -> Result<Words, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("EOF found when expecting closing quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err("EOF found after escape character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(Words(words))
}

/// docker's `PortOpt`: the long syntax `mode=host,target=80,published=8080,protocol=udp` (one port), or the short
/// syntax `[published[-end]:]target[-end][/protocol]` (a range gives one port per number). Published ports default
/// to the ingress mesh and TCP.
pub fn parse_publish(s: &str) -> Result<Ports, String> {
    if is_long_syntax(s) {
        return parse_long_port(s).map(|p| Ports(vec![p]));
    }
    parse_short_port(s).map(Ports)
}

/// Go's `\w+=\w+(,\w+=\w+)*` (unanchored): some `word=word` inside; how docker tells the long syntax of `--publish`
/// and `--network` from the short one.
fn is_long_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let w = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    (1..b.len().saturating_sub(1)).any(|i| b[i] == b'=' && w(b[i - 1]) && w(b[i + 1]))
}

fn parse_long_port(s: &str) -> Result<PortConfig, String> {
    let mut p = PortConfig::default();
    for field in s.split(',') {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.to_string(), v.to_string()),
            _ => return Err(format!("invalid field: {field}")),
        };
        let port = |v: &str| {
            v.parse::<u16>()
                .map(u32::from)
                .map_err(|_| format!("strconv.ParseUint: parsing {v:?}: invalid syntax"))
        };
        match key.as_str() {
            "protocol" => {
                if !matches!(val.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(format!("invalid protocol value '{val}'"));
                }
                p.protocol = val;
            }
            "mode" => {
                if !matches!(val.as_str(), "ingress" | "host") {
                    return Err(format!(
                        "invalid publish mode value ({val}): must be either 'ingress' or 'host'"
                    ));
                }
                p.publish_mode = val;
            }
            "target" => p.target_port = port(&val)?,
            "published" => p.published_port = port(&val)?,
            _ => return Err(format!("invalid field key: {key}")),
        }
    }
    if p.target_port == 0 {
        return Err("missing mandatory field 'target'".into());
    }
    if p.publish_mode.is_empty() {
        p.publish_mode = "ingress".into();
    }
    if p.protocol.is_empty() {
        p.protocol = "tcp".into();
    }
    Ok(p)
}

/// docker's `NetworkOpt`: a network name or ID, or the long syntax `name=net,alias=web,driver-opt=k=v` (keys and values
/// lower-cased, as docker does). The container-only keys (`ip`, `ip6`, `mac-address`, `link-local-ip`, `gw-priority`)
/// are accepted and, as docker does for services, dropped.
pub fn parse_network(s: &str) -> Result<NetworkAttachmentConfig, String> {
    if !is_long_syntax(s) {
        return Ok(NetworkAttachmentConfig {
            target: s.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachmentConfig::default();
    for field in s.split(',') {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim(), v.trim()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key {
            "name" => n.target = val.to_string(),
            "alias" => n.aliases.push(val.to_string()),
            "driver-opt" => match val.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    n.driver_opts.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => return Err("invalid key value pair format in driver options".into()),
            },
            "ip" | "ip6" | "mac-address" | "link-local-ip" | "gw-priority" => {}
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    if n.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(n)
}

/// `N` or `N-M` (docker's `nat.ParsePortRange`).
fn port_range(s: &str) -> Option<(u32, u32)> {
    let one = |x: &str| x.parse::<u16>().ok().map(u32::from);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            (b >= a).then_some((a, b))
        }
        None => one(s).map(|a| (a, a)),
    }
}

fn parse_short_port(s: &str) -> Result<Vec<PortConfig>, String> {
    let (raw, proto) = match s.rsplit_once('/') {
        Some((r, p)) => (r, p.to_lowercase()),
        None => (s, "tcp".to_string()),
    };
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto
    };
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [rest @ .., h, c] => (rest.last().copied().unwrap_or(""), *h, *c),
        [] => ("", "", ""),
    };
    if parts.len() > 2 && (parts.len() > 3 || !ip.is_empty()) {
        return Err("hostip is not supported".into());
    }
    if container.is_empty() {
        return Err(format!("no port specified: {s}<empty>"));
    }
    let (c_start, c_end) =
        port_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let (h_start, h_end) = if host.is_empty() {
        (0, 0)
    } else {
        port_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?
    };
    if !host.is_empty() && c_end - c_start != h_end - h_start && c_end != c_start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        ));
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    let port = |target: u32, published: u32| PortConfig {
        protocol: proto.clone(),
        target_port: target,
        published_port: published,
        publish_mode: "ingress".into(),
        ..Default::default()
    };
    if c_start == c_end {
        // one container port: every host port of the range maps to it
        for h in h_start..=h_end {
            out.push(port(c_start, h));
        }
    } else {
        for i in 0..=(c_end - c_start) {
            let h = if host.is_empty() { 0 } else { h_start + i };
            out.push(port(c_start + i, h));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1024 * 1024;

    #[test]
    fn memory_sizes_are_binary_like_go_units() {
        assert_eq!(parse_mem_bytes("64M"), Ok(64 * MIB));
        assert_eq!(parse_mem_bytes("64m"), Ok(64 * MIB));
        assert_eq!(parse_mem_bytes("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_mem_bytes("1g"), Ok(1024 * MIB));
        assert_eq!(parse_mem_bytes("1GB"), Ok(1024 * MIB));
        assert_eq!(parse_mem_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_mem_bytes("100"), Ok(100));
        assert_eq!(parse_mem_bytes("100b"), Ok(100));
        assert_eq!(parse_mem_bytes("10 KB"), Ok(10240));
        assert_eq!(
            parse_mem_bytes("64X"),
            Err("invalid suffix: 'x'".to_string())
        );
        assert_eq!(
            parse_mem_bytes("1bb"),
            Err("invalid suffix: 'bb'".to_string())
        );
        assert_eq!(
            parse_mem_bytes("1mbb"),
            Err("invalid suffix: 'mbb'".to_string())
        );
        assert_eq!(parse_mem_bytes("M"), Err("invalid size: 'M'".to_string()));
        assert!(parse_mem_bytes("-1").is_err());
    }

    #[test]
    fn cpus_are_exact_billionths() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(
            parse_nano_cpus("0.0000000001"),
            Err("value is too precise".to_string())
        );
        assert_eq!(
            parse_nano_cpus("abc"),
            Err("failed to parse abc as a rational number".to_string())
        );
    }

    #[test]
    fn publish_short_and_long_syntax() {
        let p = |proto: &str, t: u32, pb: u32, mode: &str| PortConfig {
            protocol: proto.into(),
            target_port: t,
            published_port: pb,
            publish_mode: mode.into(),
            ..Default::default()
        };
        assert_eq!(
            parse_publish("8080:80").unwrap().0,
            [p("tcp", 80, 8080, "ingress")]
        );
        assert_eq!(
            parse_publish("53:53/udp").unwrap().0,
            [p("udp", 53, 53, "ingress")]
        );
        assert_eq!(parse_publish("80").unwrap().0, [p("tcp", 80, 0, "ingress")]);
        assert_eq!(
            parse_publish("8080-8081:80-81").unwrap().0,
            [p("tcp", 80, 8080, "ingress"), p("tcp", 81, 8081, "ingress")]
        );
        assert_eq!(
            parse_publish("8080-8081:80").unwrap().0,
            [p("tcp", 80, 8080, "ingress"), p("tcp", 80, 8081, "ingress")]
        );
        assert_eq!(
            parse_publish("mode=host,target=80,published=8080,protocol=udp")
                .unwrap()
                .0,
            [p("udp", 80, 8080, "host")]
        );
        assert_eq!(
            parse_publish("target=80").unwrap().0,
            [p("tcp", 80, 0, "ingress")]
        );
        assert_eq!(
            parse_publish("1.2.3.4:80:80"),
            Err("hostip is not supported".into())
        );
        assert_eq!(
            parse_publish("published=80"),
            Err("missing mandatory field 'target'".into())
        );
        assert_eq!(
            parse_publish("target=80,protocol=icmp"),
            Err("invalid protocol value 'icmp'".into())
        );
        assert_eq!(
            parse_publish("target=80,color=red"),
            Err("invalid field key: color".into())
        );
        assert_eq!(parse_publish("80/icmp"), Err("invalid proto: icmp".into()));
        assert!(parse_publish("x:80").is_err());
        assert!(parse_publish("8080-8082:80-81").is_err());
    }

    #[test]
    fn words_env_and_preferences() {
        assert_eq!(
            parse_words(r#"sh -c 'echo hi; sleep 1' "a \"b\"" c\ d"#)
                .unwrap()
                .0,
            ["sh", "-c", "echo hi; sleep 1", "a \"b\"", "c d"]
        );
        assert_eq!(parse_words("  ").unwrap().0, Vec::<String>::new());
        assert!(parse_words("'open").is_err());
        assert_eq!(validate_env("A=1=2"), Ok("A=1=2".into()));
        assert!(validate_env("=x").is_err());
        assert_eq!(
            validate_env("SKEP_TEST_SURELY_UNSET_VAR"),
            Ok("SKEP_TEST_SURELY_UNSET_VAR".into())
        );
        assert_eq!(env_key("A=1=2"), "A");
        assert_eq!(env_key("B"), "B");
        assert_eq!(
            parse_placement_pref("spread=node.labels.zone")
                .unwrap()
                .spread
                .map(|s| s.spread_descriptor),
            Some("node.labels.zone".to_string())
        );
        assert!(parse_placement_pref("pack=x").is_err());
        assert!(parse_placement_pref("spread").is_err());
    }

    #[test]
    fn network_short_and_long_syntax() {
        let n = parse_network("front").unwrap();
        assert_eq!((n.target.as_str(), n.aliases.len(), n.driver_opts.len()), ("front", 0, 0));
        // `a-b` has no word=word inside: a plain name
        assert_eq!(parse_network("my-net").unwrap().target, "my-net");
        let n = parse_network("name=Back,alias=Web,alias=api,driver-opt=com.x.mtu=1400,ip=10.0.0.9").unwrap();
        assert_eq!(n.target, "back", "docker lower-cases the long syntax");
        assert_eq!(n.aliases, ["web", "api"]);
        assert_eq!(n.driver_opts.get("com.x.mtu").map(String::as_str), Some("1400"));
        assert_eq!(parse_network("alias=web").unwrap_err(), "network name/id is not specified");
        assert_eq!(parse_network("name=a,color=red").unwrap_err(), "invalid field key color");
        assert_eq!(parse_network("name=a,oops").unwrap_err(), "invalid field oops");
        assert_eq!(
            parse_network("name=a,driver-opt=x").unwrap_err(),
            "invalid key value pair format in driver options"
        );
    }
}

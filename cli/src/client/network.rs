//! `skep network …`: create, ls, inspect, rm.
//!
//! Each command mirrors docker's (the docker CLI's `cli/command/network`, github.com/docker/cli): the same
//! flags, requests and output. The one default that differs is the driver: `overlay`, since a skep daemon is always a
//! swarm node (docker defaults to `bridge`).

use super::format::{self, Template};
use super::service::ListFormat;
use super::{error_text, opts, query, seg, ApiClient};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};
use skep_api::docker::{ConfigReference, Ipam, IpamConfig, Network, NetworkCreateResponse, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;

/// `skep network` subcommands.
#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network
    Create(Box<CreateArgs>),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `skep network create`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, value_name = "DRIVER", default_value = "overlay")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = validate_label)]
    pub label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable or disable IPv4 address assignment
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ipv6: Option<bool>,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Control the network's scope
    #[arg(long, value_name = "SCOPE", default_value = "")]
    pub scope: String,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    pub config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from", value_name = "NETWORK")]
    pub config_from: Option<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", value_name = "DRIVER", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "KEY=VALUE")]
    pub ipam_opt: Vec<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "CIDR", value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Network name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// `skep network ls`.
#[derive(Args, Debug, Clone, Default)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Provide filter values (e.g. "driver=overlay"; id, name, driver, scope, type, label)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = opts::parse_filter)]
    pub filter: Vec<(String, String)>,
    /// Format output: "table" (default), "json", "raw", or a template with {{.Field}} actions (ID, Name, Driver,
    /// Scope, IPv4, IPv6, Internal, Labels, CreatedAt)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `skep network inspect`.
#[derive(Args, Debug, Clone, Default)]
pub struct InspectArgs {
    /// Format output: "json" (one line per network) or a template with {{.Path}} / {{json .Path}} actions
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    /// Network names or IDs
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// `skep network rm`.
#[derive(Args, Debug, Clone, Default)]
pub struct RmArgs {
    /// Do not error if the network does not exist, and do not ask before removing the routing-mesh network
    #[arg(short, long)]
    pub force: bool,
    /// Network names or IDs
    #[arg(value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
}

/// Run a `network` subcommand; `network rm` reads its confirmation from stdin.
pub async fn run(c: &ApiClient, cmd: NetworkCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => create(c, *a, out).await,
        NetworkCmd::Inspect(a) => inspect(c, a, out).await,
        NetworkCmd::Ls(a) => ls(c, a, out).await,
        NetworkCmd::Rm(a) => rm(c, a, &mut std::io::BufReader::new(std::io::stdin()), out).await,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// network create

/// docker's `opts.ValidateLabel`: `key[=value]`, the key neither empty nor with whitespace.
fn validate_label(s: &str) -> Result<String, String> {
    let key = s.split_once('=').map_or(s, |(k, _)| k).trim();
    if key.is_empty() {
        return Err(format!("invalid label '{s}': empty name"));
    }
    if key.contains(char::is_whitespace) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(s.to_string())
}

/// `k=v` flags as a map (docker's `MapOpts` and `ConvertKVStringsToMap`: a key alone maps to "").
fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items.iter().map(|s| opts::parse_label(s)).collect()
}

/// The `POST /networks/create` body field for field as docker's client sends it (`network.CreateRequest`: the
/// options, then `Name`). Not `skep_api`'s `NetworkCreateRequest`, which is the server's lenient reading of it and
/// would add `"EnableIPv6":null` and `"CheckDuplicate":null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    driver: String,
    scope: String,
    #[serde(rename = "EnableIPv4", skip_serializing_if = "Option::is_none")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_only: bool,
    config_from: Option<ConfigReference>,
    options: Options,
    labels: BTreeMap<String, String>,
    name: String,
}

/// Go's `net.ParseCIDR`: the address and the network it is in.
fn parse_cidr(s: &str) -> Option<(IpAddr, IpAddr, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u32 = len.parse().ok()?;
    let net = match ip {
        IpAddr::V4(a) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            IpAddr::V4(std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
        _ => return None,
    };
    Some((ip, net, len))
}

/// Whether `net` (a network, as [`parse_cidr`] returns it) contains `ip` (Go's `IPNet.Contains`).
fn contains(net: IpAddr, len: u32, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n)
        }
        _ => false,
    }
}

/// docker's `subnetMatches`: whether `subnet` contains `data` (an address, or the address part of a CIDR).
fn subnet_matches(subnet: &str, data: &str) -> Result<bool> {
    let (_, net, len) =
        parse_cidr(subnet).ok_or_else(|| anyhow!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip = if data.contains('/') {
        parse_cidr(data).ok_or_else(|| anyhow!("invalid CIDR address: {data}"))?.0
    } else {
        match data.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        }
    };
    Ok(contains(net, len, ip))
}

/// docker's `createIPAMConfig`: one config per subnet (overlaps refused), each `--ip-range` and `--gateway` put on the
/// subnet that contains it (one of each per subnet). Configs keep the order the subnets were given in.
fn ipam_config(a: &CreateArgs) -> Result<Ipam> {
    if a.subnet.len() < a.ip_range.len() || a.subnet.len() < a.gateway.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut configs: Vec<IpamConfig> = Vec::new();
    for s in &a.subnet {
        for c in &configs {
            if subnet_matches(s, &c.subnet)? || subnet_matches(&c.subnet, s)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        configs.push(IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        });
    }
    for r in &a.ip_range {
        let mut matched = false;
        for c in configs.iter_mut() {
            if !subnet_matches(&c.subnet, r)? {
                continue;
            }
            if !c.ip_range.is_empty() {
                bail!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    c.ip_range,
                    c.subnet
                );
            }
            c.ip_range = r.clone();
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for range {r}");
        }
    }
    for g in &a.gateway {
        let mut matched = false;
        for c in configs.iter_mut() {
            if !subnet_matches(&c.subnet, g)? {
                continue;
            }
            if !c.gateway.is_empty() {
                bail!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    c.gateway,
                    c.subnet
                );
            }
            c.gateway = g.clone();
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for gateway {g}");
        }
    }
    Ok(Ipam {
        driver: a.ipam_driver.clone(),
        options: Some(kv_map(&a.ipam_opt)),
        config: configs,
    })
}

/// The body docker's `network create` sends for these flags.
fn create_body(a: &CreateArgs) -> Result<CreateBody> {
    Ok(CreateBody {
        driver: a.driver.clone(),
        scope: a.scope.clone(),
        enable_ipv4: a.ipv4,
        enable_ipv6: a.ipv6,
        ipam: ipam_config(a)?,
        internal: a.internal,
        attachable: a.attachable,
        ingress: a.ingress,
        config_only: a.config_only,
        config_from: a.config_from.as_ref().map(|n| ConfigReference { network: n.clone() }),
        options: kv_map(&a.opt),
        labels: kv_map(&a.label),
        name: a.name.clone(),
    })
}

/// `network create`: POST /networks/create → prints the new network's ID.
pub async fn create(c: &ApiClient, a: CreateArgs, out: &mut dyn Write) -> Result<()> {
    let body = create_body(&a)?;
    let reply: NetworkCreateResponse = c.post("/networks/create", &body).await?;
    if !reply.warning.is_empty() {
        eprintln!("{}", reply.warning);
    }
    writeln!(out, "{}", reply.id)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// network ls

const LS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const LS_RAW: &str = r"network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n";
const LS_RAW_QUIET: &str = "network_id: {{.ID}}";

/// `network ls`: GET /networks[?filters=…] → the networks sorted by name (naturally), IDs cut to 12 characters
/// unless `--no-trunc`.
pub async fn ls(c: &ApiClient, a: LsArgs, out: &mut dyn Write) -> Result<()> {
    let format = ListFormat::parse(a.format.as_deref(), a.quiet, LS_TABLE, LS_RAW, LS_RAW_QUIET)?;
    let mut filters = skep_api::filters::Filters::default();
    for (k, v) in &a.filter {
        filters.add(k, v);
    }
    let q = if filters.0.is_empty() {
        String::new()
    } else {
        query(&[("filters", &filters.to_json())])
    };
    let mut networks: Vec<Network> = c.get(&format!("/networks{q}")).await?;
    out.write_all(render_network_list(&mut networks, &format, !a.no_trunc).as_bytes())?;
    Ok(())
}

/// The `network ls` output for these networks (sorted here).
pub fn render_network_list(networks: &mut [Network], format: &ListFormat, trunc: bool) -> String {
    networks.sort_by(|a, b| format::natural_cmp(&a.name, &b.name));
    let rows: Vec<Value> = networks.iter().map(|n| network_row(n, trunc)).collect();
    let header = json!({
        "CreatedAt": "CREATED AT", "Driver": "DRIVER", "ID": "NETWORK ID", "IPv4": "IPV4", "IPv6": "IPV6",
        "Internal": "INTERNAL", "Labels": "LABELS", "Name": "NAME", "Scope": "SCOPE",
    });
    format.render(&rows, &header)
}

/// docker's `stringid.TruncateID`: what follows a `sha256:`-style prefix, cut to 12 characters.
fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.chars().take(12).collect()
}

/// The fields `network ls` templates see (docker's `networkContext`; booleans are the strings Go prints).
fn network_row(n: &Network, trunc: bool) -> Value {
    let created = if n.created.is_empty() {
        "0001-01-01 00:00:00 +0000 UTC".to_string()
    } else {
        format::go_time_string(&n.created)
    };
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "CreatedAt": created,
        "Driver": n.driver,
        "ID": if trunc { truncate_id(&n.id) } else { n.id.clone() },
        "IPv4": n.enable_ipv4.to_string(),
        "IPv6": n.enable_ipv6.to_string(),
        "Internal": n.internal.to_string(),
        "Labels": labels.join(","),
        "Name": n.name,
        "Scope": n.scope,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// network inspect

/// GET /networks/{ref}[?verbose=true]: the daemon's JSON as it sent it (docker prints it with the keys in the
/// daemon's order), checked to be JSON.
async fn get_raw(c: &ApiClient, reference: &str, verbose: bool) -> Result<(Vec<u8>, Value)> {
    let q = if verbose {
        query(&[("verbose", "true")])
    } else {
        String::new()
    };
    let raw = c
        .request(Method::GET, &format!("/networks/{}{q}", seg(reference)), None)
        .await?;
    let value: Value = serde_json::from_slice(&raw).map_err(super::ApiError::from)?;
    Ok((raw.to_vec(), value))
}

/// `network inspect`: GET /networks/{ref} per argument; the found networks as an indented JSON array (the daemon's
/// text re-indented, as docker does), `--format json` one compact line each, or a template per network; then the
/// errors (exit 1).
pub async fn inspect(c: &ApiClient, a: InspectArgs, out: &mut dyn Write) -> Result<()> {
    let format = a.format.clone().unwrap_or_default();
    let tmpl = match format.as_str() {
        "" | "json" => None,
        t => Some(Template::parse(t)?),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for r in &a.networks {
        match get_raw(c, r, a.verbose).await {
            Ok(n) => found.push(n),
            Err(e) => errors.push(error_text(&e)),
        }
    }
    match (format.as_str(), tmpl) {
        ("json", _) => {
            for (raw, _) in &found {
                writeln!(out, "{}", format::go_json_reformat(raw, None))?;
            }
        }
        (_, Some(t)) => {
            if found.is_empty() {
                writeln!(out)?;
            }
            for (_, v) in &found {
                writeln!(out, "{}", t.render(v))?;
            }
        }
        _ if found.is_empty() => writeln!(out, "[]")?,
        _ => {
            let mut all = b"[".to_vec();
            for (i, (raw, _)) in found.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(raw);
            }
            all.push(b']');
            writeln!(out, "{}", format::go_json_reformat(&all, Some("    ")))?;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// network rm

/// docker's warning before it removes the routing mesh's network.
pub const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your \
swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create \
ingress networks will be impaired.\nAre you sure you want to continue?";

/// docker's `PromptForConfirmation`: prints `message [y/N] ` and reads one line; only `y` or `Y` (spaces trimmed)
/// is a yes, and so is nothing else, end of input included.
fn confirm(input: &mut dyn BufRead, out: &mut dyn Write, message: &str) -> Result<bool> {
    write!(out, "{message} [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}

/// `network rm`: per argument GET /networks/{ref} (to see whether it is the ingress network, which needs a yes on
/// `input` unless `--force`) → DELETE /networks/{ref}; prints each removed argument, then every error (exit 1).
/// With `--force` a network that does not exist is not an error.
pub async fn rm(
    c: &ApiClient,
    a: RmArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<()> {
    let mut errors = Vec::new();
    for r in &a.networks {
        let path = format!("/networks/{}", seg(r));
        // as docker does, a failed lookup is not an error here: the DELETE reports it
        if let Ok(n) = c.get::<Network>(&path).await {
            if n.ingress && !a.force && !confirm(input, out, INGRESS_WARNING)? {
                continue;
            }
        }
        match c.delete(&path).await {
            Ok(()) => writeln!(out, "{r}")?,
            Err(e) if a.force && e.is_not_found() => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

#[cfg(test)]
mod tests;

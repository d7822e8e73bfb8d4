//! The client commands: every `skep` subcommand but `daemon` is an HTTP client of a daemon's Docker Engine API.
//!
//! Each command mirrors the docker CLI: the same flags, the same request sequence
//! (the docker CLI's `cli/command`, github.com/docker/cli) and the same output, with `skep` where docker prints `docker`. Commands
//! write to a `&mut dyn Write` so tests can capture what they print; errors are returned and printed by [`main`] on
//! stderr, with exit code 1.
//!
//! # Layout
//! - [`http`]: the API client (a connection per request over a unix or TCP socket) and its typed error.
//! - [`opts`]: flag values parsed as docker parses them (Go durations, filters, node addresses, CIDR pools).
//! - [`format`]: docker's output conventions: tab-aligned tables, capitalisation, sizes, durations, indented JSON,
//!   and the small `--format` template subset.
//! - [`swarm`]: `swarm init | join | join-token | leave | update | inspect`.
//! - [`node`]: `node ls | inspect | promote | demote | update | rm`.
//! - [`service`]: `service create | inspect | ls | ps | rm | rollback | scale | update`, and the progress display.
//! - [`network`]: `network create | ls | inspect | rm`.
//! - [`stack`]: `stack deploy | ls | ps | rm | services` from compose files.
//! - [`system`]: `info`, `version`.
//! - [`tls`]: `--tlsverify` and its files, as the docker CLI takes them.

pub mod format;
pub mod http;
pub mod network;
pub mod node;
pub mod opts;
pub mod service;
pub mod stack;
pub mod swarm;
pub mod system;
pub mod tls;

#[cfg(test)]
mod fake_daemon;
#[cfg(test)]
mod tests;

pub use http::{ApiClient, ApiError};

use std::io::Write;

/// The client subcommands, flattened by `main.rs` next to `daemon`.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Manage the swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCmd),
    /// Manage swarm nodes
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Manage swarm services
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage swarm stacks (compose files)
    #[command(subcommand)]
    Stack(stack::StackCmd),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Show the skep version information
    Version(system::VersionArgs),
}

/// Run one client command against the daemon at `host` (`unix:///path` or `tcp://host:port`); returns the exit code.
pub fn main(host: &str, tls: &tls::TlsArgs, cmd: ClientCommand) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    let client = match ApiClient::new(host).and_then(|c| tls.apply(c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let stdout = std::io::stdout();
    service::progress::set_terminal(std::io::IsTerminal::is_terminal(&stdout));
    let mut out = stdout.lock();
    let result = rt.block_on(run(&client, cmd, &mut out));
    let _ = out.flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", error_text(&e));
            1
        }
    }
}

/// Run one client command, printing to `out`.
pub async fn run(
    client: &ApiClient,
    cmd: ClientCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Swarm(c) => swarm::run(client, c, out).await,
        ClientCommand::Node(c) => node::run(client, c, out).await,
        ClientCommand::Service(c) => service::run(client, c, out).await,
        ClientCommand::Network(c) => network::run(client, c, out).await,
        ClientCommand::Stack(c) => stack::run(client, c, out).await,
        ClientCommand::Info(a) => system::info(client, a, out).await,
        ClientCommand::Version(a) => system::version(client, a, out).await,
    }
}

/// The text printed for a failed command: the error and its causes joined by ": " (as `{:#}` does), stopping at an
/// [`ApiError`], whose text is already what docker prints (the I/O cause of "Cannot connect ..." is not repeated).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.downcast_ref::<ApiError>().is_some() {
            break;
        }
    }
    parts.join(": ")
}

/// Percent-encode one path segment (an ID or name from the command line).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&...` with form-encoded values, keys sorted as Go's `url.Values.Encode` sorts them; empty for no pairs.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut pairs = pairs.to_vec();
    pairs.sort();
    let mut ser = url::form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

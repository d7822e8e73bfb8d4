//! `skep`: `skep daemon` runs a node; every other subcommand talks to a daemon's API.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skep", version, about = "swarm-mode clustering for container hosts")]
struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host", env = "SKEP_HOST", default_value = skep_cli::DEFAULT_HOST)]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a skep node
    Daemon(skep_cli::daemon::DaemonArgs),
    #[command(flatten)]
    Client(skep_cli::client::ClientCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Daemon(args) => skep_cli::daemon::main(args),
        Command::Client(cmd) => skep_cli::client::main(&cli.host, cmd),
    };
    std::process::exit(code);
}

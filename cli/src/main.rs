//! `skep`: `skep daemon` runs a node; every other subcommand talks to a daemon's API.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skep", version, about = "swarm-mode clustering for container hosts")]
struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host", env = "SKEP_HOST", default_value = skep_cli::DEFAULT_HOST)]
    host: String,
    #[command(flatten)]
    tls: skep_cli::client::tls::TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a skep node
    Daemon(skep_cli::daemon::DaemonArgs),
    /// Images: import a directory as an image into a registry
    #[command(subcommand)]
    Image(skep_cli::image::ImageCommand),
    #[command(flatten)]
    Client(skep_cli::client::ClientCommand),
}

fn main() {
    // the process engine runs its tasks' init as this binary with a hidden first argument
    if let Some(code) = skep_node::daemon::run_task_init_if_requested() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Daemon(args) => skep_cli::daemon::main(args),
        Command::Image(cmd) => skep_cli::image::main(cmd),
        Command::Client(cmd) => skep_cli::client::main(&cli.host, &cli.tls, cmd),
    };
    std::process::exit(code);
}

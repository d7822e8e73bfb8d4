//! `skep`: `skep daemon` runs a node; every other subcommand talks to a daemon's API.

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Generate the shell completion script (bash, zsh, fish, elvish, powershell)
    Completion {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// The completion script for `shell`, generated from the command definitions (every subcommand and flag).
fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "skep", &mut out);
    out
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
        Command::Completion { shell } => {
            use std::io::Write as _;
            match std::io::stdout().write_all(&completion_script(shell)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_name_the_subcommands_and_their_flags() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let text = String::from_utf8(completion_script(shell)).unwrap();
            for word in ["daemon", "service", "stack", "deploy", "compose-file", "completion", "node", "swarm"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn the_command_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}

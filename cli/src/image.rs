//! `skep image import DIR REFERENCE`: a directory becomes a one-layer image (owners root, links kept) with the run
//! settings given (a Dockerfile's `HEALTHCHECK` too, with `--health-cmd` and its options), pushed to its registry. For demos and tests that need an image without Docker: the local-cluster
//! script builds its web image this way from busybox-static.

use skep_registry::build::{self, ImageSpec};
use skep_registry::manifest::RunConfig;
use skep_registry::{Client, Credentials};

/// `skep image …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Push a directory as a one-layer image
    Import(ImportArgs),
}

/// `skep image import` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// Reach the registry over plain HTTP (as a daemon's --insecure-registry)
    #[arg(long)]
    pub insecure: bool,
    /// Entrypoint (repeat for each word)
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Cmd (repeat for each word)
    #[arg(long, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Environment variable K=V (repeatable)
    #[arg(long)]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long, default_value = "")]
    pub workdir: String,
    /// User
    #[arg(long, default_value = "")]
    pub user: String,
    /// HEALTHCHECK command, run with /bin/sh -c (a Dockerfile's `HEALTHCHECK CMD <command>`)
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// HEALTHCHECK --interval (a Go duration: 30s)
    #[arg(long, value_name = "DURATION", value_parser = crate::client::opts::parse_go_duration)]
    pub health_interval: Option<i64>,
    /// HEALTHCHECK --timeout
    #[arg(long, value_name = "DURATION", value_parser = crate::client::opts::parse_go_duration)]
    pub health_timeout: Option<i64>,
    /// HEALTHCHECK --start-period
    #[arg(long, value_name = "DURATION", value_parser = crate::client::opts::parse_go_duration)]
    pub health_start_period: Option<i64>,
    /// HEALTHCHECK --retries
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Registry credentials: user name (the password comes from $SKEP_REGISTRY_PASSWORD)
    #[arg(long)]
    pub username: Option<String>,
    /// The directory that becomes the image's root
    pub dir: std::path::PathBuf,
    /// Where to push it (registry/repository:tag)
    pub reference: String,
}

/// Runs an image command; returns the exit code.
pub fn main(cmd: ImageCommand) -> i32 {
    let ImageCommand::Import(a) = cmd;
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skep image import: {e}");
            return 1;
        }
    };
    match rt.block_on(import(a)) {
        Ok(digest) => {
            println!("{digest}");
            0
        }
        Err(e) => {
            eprintln!("skep image import: {e}");
            1
        }
    }
}

async fn import(a: ImportArgs) -> Result<String, String> {
    let healthcheck = healthcheck(&a)?;
    let layer = build::tar_dir(&a.dir).map_err(|e| format!("reading {}: {e}", a.dir.display()))?;
    let reference = skep_api::docker::reference::Reference::parse(&a.reference).ok_or_else(|| format!("invalid reference format: {}", a.reference))?;
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    let insecure = if a.insecure { vec![reference.domain.clone()] } else { vec![] };
    let creds = Credentials {
        username: a.username.unwrap_or_default(),
        password: std::env::var("SKEP_REGISTRY_PASSWORD").unwrap_or_default(),
        ..Default::default()
    };
    let session = Client::new(insecure).session(&a.reference, creds).map_err(|e| e.to_string())?.for_push();
    let config = RunConfig { entrypoint: a.entrypoint, cmd: a.cmd, env: a.env, working_dir: a.workdir, user: a.user, healthcheck, ..Default::default() };
    let d = build::push_image(&session, &ImageSpec { layers: vec![layer], config, platform: None }, Some(&tag)).await.map_err(|e| e.to_string())?;
    Ok(d.digest)
}

/// The image config's `Healthcheck` from the `--health-*` flags (Docker's `HealthConfig`, durations in nanoseconds);
/// an option without `--health-cmd` is refused rather than dropped.
fn healthcheck(a: &ImportArgs) -> Result<Option<serde_json::Value>, String> {
    let options = [("Interval", a.health_interval), ("Timeout", a.health_timeout), ("StartPeriod", a.health_start_period)];
    let Some(cmd) = &a.health_cmd else {
        if options.iter().any(|(_, v)| v.is_some()) || a.health_retries.is_some() {
            return Err("--health-interval, --health-timeout, --health-start-period and --health-retries need --health-cmd".into());
        }
        return Ok(None);
    };
    let mut hc = serde_json::json!({"Test": ["CMD-SHELL", cmd]});
    for (name, v) in options {
        match v {
            Some(ns) if ns < 0 => return Err(format!("--health-{}: a duration cannot be negative", name.to_lowercase())),
            Some(ns) => hc[name] = ns.into(),
            None => {}
        }
    }
    if let Some(r) = a.health_retries {
        hc["Retries"] = r.into();
    }
    // what a daemon would refuse is refused here, before anything is pushed
    skep_api::docker::health::HealthCheck::from_spec(Some(&hc)).map_err(|e| e.to_string())?;
    Ok(Some(hc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        image: ImageCommand,
    }

    fn args(flags: &[&str]) -> ImportArgs {
        let argv = ["skep", "import"].iter().chain(flags).chain(&["/tmp", "127.0.0.1:5000/a:1"]).copied();
        let ImageCommand::Import(a) = Cli::try_parse_from(argv).expect("flags parse").image;
        a
    }

    #[test]
    fn health_flags_become_the_image_configs_healthcheck() {
        assert_eq!(healthcheck(&args(&[])), Ok(None));
        let hc = healthcheck(&args(&["--health-cmd", "wget -q -O- localhost", "--health-interval", "2s", "--health-retries", "4"]));
        assert_eq!(hc, Ok(Some(serde_json::json!({"Test": ["CMD-SHELL", "wget -q -O- localhost"], "Interval": 2_000_000_000i64, "Retries": 4}))));
        assert!(healthcheck(&args(&["--health-timeout", "1s"])).unwrap_err().contains("need --health-cmd"));
        assert!(healthcheck(&args(&["--health-cmd", "true", "--health-interval", "100us"])).unwrap_err().contains("less than 1ms"));
    }
}

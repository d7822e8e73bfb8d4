//! `skep-bench-unpack`: layer unpack throughput, the process engine's unpacker beside `tar -x` of the same layer,
//! in one run.
//!
//! Each directory given (default: `/usr/include`, many small files, and `/usr/lib/gcc`, few large ones) becomes one
//! layer the way `skep image import` makes one (`skep_registry::build::tar_dir`: owners root, links kept), written
//! to a file uncompressed and gzipped (`build::gzip`, as pushed). Then, per round, alternating which goes first:
//! - **skep**: `skep_worker::images::unpack::unpack` of the file into an empty directory: the real path of a pull
//!   (decompression, the checks on every entry, owners and modes, the stream hashed and checked against its
//!   `diff_id`);
//! - **tar**: GNU `tar -xf` (`-xzf` for the gzipped layer; `tar` then runs `gzip -d` as a second process) of the
//!   same file into an empty directory, as root, so it too applies owners and modes.
//!
//! Throughput is the layer's uncompressed size over the wall time; the directory is removed and `sync` run between
//! runs, untimed. Goal (issue 12): skep ≥ 0.8× tar. Prints a markdown table (medians, the ratio of medians, and the
//! median of each round's ratio: the two runs of a round are adjacent, so load that drifts over the run hits both
//! alike); asserts nothing.
//!
//! Usage: `cargo build --release -p skep-bench-unpack && target/release/skep-bench-unpack [--rounds N] [--copies K]
//! [--work DIR] [LAYER_DIR...]` as root (owners). `--rounds` defaults to 11; `--copies K` puts K copies of each
//! directory in its layer (`copy0/`, `copy1/`, …) so each run lasts long enough to measure (one copy of
//! `/usr/lib/gcc` unpacks in ~0.3 s); `--work` is where layers and unpacked trees go (default `/var/tmp`).

use anyhow::{bail, ensure, Context as _, Result};
use skep_registry::build;
use skep_registry::manifest::Compression;
use skep_worker::images::unpack::unpack;
use skep_worker::images::UnpackLimits;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One layer, on disk in both forms.
struct Layer {
    name: String,
    tar: PathBuf,
    gz: PathBuf,
    bytes: u64,
    gz_bytes: u64,
    entries: usize,
    diff_id: String,
}

/// `dir` as a layer the way `build::tar_dir` makes one, `copies` times over under `copy<i>/` when more than one.
fn layer_tar(dir: &Path, copies: usize) -> std::io::Result<Vec<u8>> {
    if copies == 1 {
        return build::tar_dir(dir);
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    for i in 0..copies {
        b.append_dir_all(format!("copy{i}"), dir)?;
    }
    b.into_inner()
}

fn make_layer(dir: &Path, copies: usize, work: &Path, i: usize) -> Result<Layer> {
    let tar = layer_tar(dir, copies).with_context(|| format!("reading {}", dir.display()))?;
    let gz = build::gzip(&tar)?;
    let (tar_path, gz_path) = (work.join(format!("layer{i}.tar")), work.join(format!("layer{i}.tar.gz")));
    std::fs::write(&tar_path, &tar)?;
    std::fs::write(&gz_path, &gz)?;
    let entries = count_entries(&tar_path)?;
    Ok(Layer {
        name: if copies == 1 { dir.display().to_string() } else { format!("{} × {copies}", dir.display()) },
        tar: tar_path,
        gz: gz_path,
        bytes: tar.len() as u64,
        gz_bytes: gz.len() as u64,
        entries,
        diff_id: skep_registry::Digest::of(&tar).to_string(),
    })
}

/// The layer's entries, as `tar -t` lists them.
fn count_entries(tar: &Path) -> Result<usize> {
    let out = Command::new("tar").arg("-tf").arg(tar).output()?;
    ensure!(out.status.success(), "tar -tf {}: {}", tar.display(), out.status);
    Ok(out.stdout.iter().filter(|&&b| b == b'\n').count())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Skep,
    Tar,
}

/// Removes `dest` and syncs (untimed), then times one unpack of `layer` into it.
fn run_once(tool: Tool, layer: &Layer, gzip: bool, dest: &Path) -> Result<Duration> {
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::create_dir_all(dest)?;
    Command::new("sync").status()?;
    let file = if gzip { &layer.gz } else { &layer.tar };
    let t = Instant::now();
    match tool {
        Tool::Skep => {
            let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
            let c = if gzip { Compression::Gzip } else { Compression::None };
            let limits = UnpackLimits { max_bytes: layer.bytes + (1 << 20), max_entries: 1 << 24 };
            let u = unpack(f, c, dest, limits, Some(&layer.diff_id)).map_err(|e| anyhow::anyhow!("{e}"))?;
            ensure!(u.bytes == layer.bytes, "unpacked {} of {} bytes", u.bytes, layer.bytes);
        }
        Tool::Tar => {
            let flags = if gzip { "-xzf" } else { "-xf" };
            let st = Command::new("tar").arg(flags).arg(file).arg("-C").arg(dest).status()?;
            ensure!(st.success(), "tar {flags} {}: {st}", file.display());
        }
    }
    Ok(t.elapsed())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut copies, mut work, mut dirs) = (11usize, 1usize, PathBuf::from("/var/tmp"), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            "--copies" => copies = args.next().context("--copies K")?.parse()?,
            "--work" => work = args.next().context("--work DIR")?.into(),
            d if !d.starts_with('-') => dirs.push(PathBuf::from(d)),
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(rounds > 0 && copies > 0, "--rounds and --copies must be at least 1");
    if dirs.is_empty() {
        dirs = vec!["/usr/include".into(), "/usr/lib/gcc".into()];
    }
    let work = work.join(format!("skep-bench-unpack-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = bench(&dirs, copies, &work, rounds);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn bench(dirs: &[PathBuf], copies: usize, work: &Path, rounds: usize) -> Result<()> {
    let mut rows = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        eprintln!("building a layer from {}", d.display());
        let layer = make_layer(d, copies, work, i)?;
        for gzip in [false, true] {
            let (mut skep, mut tar) = (Vec::new(), Vec::new());
            for r in 0..rounds {
                let order = if r % 2 == 0 { [Tool::Skep, Tool::Tar] } else { [Tool::Tar, Tool::Skep] };
                for tool in order {
                    let took = run_once(tool, &layer, gzip, &work.join("out"))?;
                    let mibs = layer.bytes as f64 / (1 << 20) as f64 / took.as_secs_f64();
                    if tool == Tool::Skep { skep.push(mibs) } else { tar.push(mibs) }
                }
                eprintln!("{} gzip={gzip} round {r}: skep {:.0} MiB/s, tar {:.0} MiB/s", layer.name, skep[r], tar[r]);
            }
            let mut paired: Vec<f64> = skep.iter().zip(&tar).map(|(s, t)| s / t).collect();
            let (lo, hi) = paired.iter().fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
            let p = median(&mut paired);
            let (s, t) = (median(&mut skep), median(&mut tar));
            rows.push(format!(
                "| {} | {} | {:.1} MiB ({} entries{}) | {s:.0} | {t:.0} | {:.2}× | {p:.2}× ({lo:.2}–{hi:.2}) |",
                layer.name,
                if gzip { "gzip" } else { "none" },
                layer.bytes as f64 / (1 << 20) as f64,
                layer.entries,
                if gzip { format!(", {:.1} MiB gzipped", layer.gz_bytes as f64 / (1 << 20) as f64) } else { String::new() },
                s / t
            ));
        }
    }
    println!("rounds: {rounds} (median of each; MiB/s of uncompressed layer)\n");
    let columns = "layer from | compression | size | skep MiB/s | tar -x MiB/s | skep / tar";
    println!("| {columns} | per round: median (range) |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

//! The Debian install path, checked without touching the machine: `deploy/install.sh` staged into a temporary root
//! (`--destdir`), and the package `deploy/deb/build.sh` makes with `dpkg-deb`, read back with `dpkg-deb --info`,
//! `--contents` and extracted into a temporary directory. The files, their modes and owners, the unit's `ExecStart`,
//! the package's dependencies and maintainer scripts are what docs/install.md promises. Installing the package with
//! `dpkg --root` is not done: its maintainer scripts would run systemctl against this machine.
//!
//! Needs no root. Skipped (with a message) without `dpkg-deb`, as on a non-Debian machine.

use anyhow::{ensure, Context as _, Result};
use skep_tests::process::{run, Output};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Result<TempDir> {
        let d = std::env::temp_dir().join(format!("skt-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a script of deploy/ with `args`, without the caller's install variables.
fn script(path: &str, args: &[&str]) -> Result<Output> {
    let mut c = Command::new(repo().join(path));
    c.args(args).env_remove("DESTDIR").env_remove("PREFIX");
    run(c, T)
}

/// The permission bits of `p` (no file type), or an error naming it.
fn mode(p: &Path) -> Result<u32> {
    Ok(std::fs::metadata(p).with_context(|| format!("{} is missing", p.display()))?.permissions().mode() & 0o7777)
}

fn assert_mode(root: &Path, rel: &str, want: u32) -> Result<()> {
    let got = mode(&root.join(rel))?;
    ensure!(got == want, "{rel}: mode {got:o}, want {want:o}");
    Ok(())
}

#[test]
fn install_sh_stages_the_binary_unit_config_and_private_directories_with_their_modes() -> Result<()> {
    let bin = skep_tests::skep_bin()?;
    let bin = bin.to_str().context("a UTF-8 path")?;
    let tmp = TempDir::new("install")?;
    let root = tmp.0.join("root");
    let root_s = root.to_str().context("a UTF-8 path")?;
    script("deploy/install.sh", &["--bin", bin, "--destdir", root_s])?.ok()?;

    assert_mode(&root, "usr/local/bin/skep", 0o755)?;
    assert_mode(&root, "etc/systemd/system/skep.service", 0o644)?;
    assert_mode(&root, "etc/default/skep", 0o644)?;
    assert_mode(&root, "etc/skep/tls", 0o700)?;
    assert_mode(&root, "var/lib/skep", 0o700)?;
    ensure!(std::fs::read(root.join("usr/local/bin/skep"))? == std::fs::read(bin)?, "the installed binary differs");
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/skep.service"))?;
    for line in [
        "ExecStart=/usr/local/bin/skep daemon --data-root /var/lib/skep -H unix:///run/skep/skep.sock $SKEP_OPTS",
        "EnvironmentFile=-/etc/default/skep",
        "KillMode=process",
        "Delegate=yes",
        "StateDirectoryMode=0700",
    ] {
        ensure!(unit.lines().any(|l| l == line), "the unit lacks `{line}`:\n{unit}");
    }
    // systemd accepts the unit (its ExecStart pointed at the staged binary, which exists)
    if skep_tests::find_in_path("systemd-analyze").is_some() {
        let staged = root.join("usr/local/bin/skep");
        let copy = tmp.0.join("skep.service");
        let exec = format!("ExecStart={} ", staged.display());
        std::fs::write(&copy, unit.replace("ExecStart=/usr/local/bin/skep ", &exec))?;
        let mut c = Command::new("systemd-analyze");
        c.arg("verify").arg(&copy);
        let o = run(c, T)?;
        ensure!(o.success() && o.stderr.trim().is_empty(), "systemd-analyze verify: {}", o.describe_failure());
    }
    let out = Command::new(root.join("usr/local/bin/skep")).arg("--version").output()?;
    let says = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success() && says.starts_with("skep "), "skep --version: {out:?}");

    // a second run keeps the operator's /etc/default/skep; another prefix moves the binary and ExecStart with it
    std::fs::write(root.join("etc/default/skep"), "SKEP_OPTS=\"--engine process\"\n")?;
    script("deploy/install.sh", &["--bin", bin, "--destdir", root_s, "--prefix", "/opt/skep"])?.ok()?;
    ensure!(std::fs::read_to_string(root.join("etc/default/skep"))?.contains("--engine process"), "config overwritten");
    assert_mode(&root, "opt/skep/bin/skep", 0o755)?;
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/skep.service"))?;
    ensure!(unit.contains("\nExecStart=/opt/skep/bin/skep daemon "), "ExecStart did not follow --prefix:\n{unit}");

    // bad input is refused with a reason, and changes nothing
    for (args, says) in [
        (vec!["--prefix", "relative"], "must be absolute"),
        (vec!["--prefix", "/opt/a b"], "may hold only"),
        (vec!["--enable"], "act on this host"),
        (vec!["--bin", "/nonexistent/skep"], "not an executable file"),
        (vec!["--frobnicate"], "unknown argument"),
    ] {
        let mut all = vec!["--bin", bin, "--destdir", root_s];
        all.extend(&args);
        let err = script("deploy/install.sh", &all)?.refused()?;
        ensure!(err.contains(says), "install.sh {args:?}: `{err}` does not say `{says}`");
    }

    // --uninstall removes the binary and the unit, keeps the state and the configuration
    script("deploy/install.sh", &["--uninstall", "--destdir", root_s])?.ok()?;
    ensure!(!root.join("usr/local/bin/skep").exists(), "the binary is still there");
    ensure!(!root.join("etc/systemd/system/skep.service").exists(), "the unit is still there");
    for kept in ["var/lib/skep", "etc/default/skep", "etc/skep/tls"] {
        ensure!(root.join(kept).exists(), "{kept} was removed");
    }
    Ok(())
}

#[test]
fn the_deb_holds_root_owned_files_with_their_modes_dependencies_a_conffile_and_valid_scripts() -> Result<()> {
    if skep_tests::find_in_path("dpkg-deb").is_none() {
        eprintln!("skipped: no dpkg-deb (not a Debian machine)");
        return Ok(());
    }
    let bin = skep_tests::skep_bin()?;
    let tmp = TempDir::new("deb")?;
    let out = tmp.0.to_str().context("a UTF-8 path")?;
    // uncompressed: xz takes minutes over a debug build's binary on a small machine
    let bin_s = bin.to_str().context("a UTF-8 path")?;
    let built = script("deploy/deb/build.sh", &["--bin", bin_s, "--out", out, "--compression", "none"])?;
    let deb = PathBuf::from(built.ok()?.trim());
    let mut c = Command::new("dpkg");
    c.arg("--print-architecture");
    let arch = run(c, T)?.ok()?.trim().to_owned();
    ensure!(deb == tmp.0.join(format!("skep_0.1.0_{arch}.deb")), "package path {}", deb.display());
    let dpkg_deb = |args: &[&str]| -> Result<String> {
        let mut c = Command::new("dpkg-deb");
        c.args(args).arg(&deb);
        Ok(run(c, T)?.ok()?.to_owned())
    };

    let info = dpkg_deb(&["--info"])?;
    for field in ["Package: skep", "Version: 0.1.0", &format!("Architecture: {arch}"), "Section: admin"] {
        ensure!(info.lines().any(|l| l.trim() == field), "dpkg-deb --info lacks `{field}`:\n{info}");
    }
    let depends = info.lines().find_map(|l| l.trim().strip_prefix("Depends: ")).context("no Depends")?;
    for dep in ["libc6", "iproute2", "nftables", "util-linux"] {
        ensure!(depends.split(", ").any(|d| d == dep), "Depends lacks {dep}: {depends}");
    }

    // `drwx------ root/root 0 2026-… ./var/lib/skep/`: modes and owners as promised, nothing unexpected
    let contents = dpkg_deb(&["--contents"])?;
    let entries: Vec<(String, String, String)> = contents
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| (f[0].to_owned(), f[1].to_owned(), f[5].trim_end_matches('/').to_owned()))
        })
        .collect();
    for (path, perms) in [
        ("./usr/bin/skep", "-rwxr-xr-x"),
        ("./lib/systemd/system/skep.service", "-rw-r--r--"),
        ("./etc/default/skep", "-rw-r--r--"),
        ("./etc/skep/tls", "drwx------"),
        ("./var/lib/skep", "drwx------"),
    ] {
        let e = entries.iter().find(|e| e.2 == path);
        let e = e.with_context(|| format!("{path} not in the package:\n{contents}"))?;
        ensure!(e.0 == perms, "{path}: {} want {perms}", e.0);
    }
    ensure!(entries.iter().all(|e| e.1 == "root/root"), "files not owned by root/root:\n{contents}");
    ensure!(!contents.contains("usr/local"), "the package installs under /usr/local:\n{contents}");

    // extracted: the unit runs /usr/bin/skep, the binary runs; control files and scripts
    let x = tmp.0.join("x");
    let mut c = Command::new("dpkg-deb");
    c.arg("-R").arg(&deb).arg(&x);
    run(c, T)?.ok()?;
    let unit = std::fs::read_to_string(x.join("lib/systemd/system/skep.service"))?;
    ensure!(unit.contains("\nExecStart=/usr/bin/skep daemon --data-root /var/lib/skep "), "unit:\n{unit}");
    let v = Command::new(x.join("usr/bin/skep")).arg("--version").output()?;
    ensure!(v.status.success(), "the packaged skep does not run: {v:?}");
    ensure!(std::fs::read_to_string(x.join("DEBIAN/conffiles"))?.trim() == "/etc/default/skep", "conffiles");
    for s in ["postinst", "prerm", "postrm"] {
        let p = x.join("DEBIAN").join(s);
        ensure!(mode(&p)? == 0o755, "{s} is not 0755");
        let mut c = Command::new("sh");
        c.arg("-n").arg(&p);
        run(c, T)?.ok().with_context(|| format!("{s} has a syntax error"))?;
    }
    let postinst = std::fs::read_to_string(x.join("DEBIAN/postinst"))?;
    ensure!(postinst.contains("systemctl try-restart skep.service"), "an upgrade must restart a running daemon");
    let postrm = std::fs::read_to_string(x.join("DEBIAN/postrm"))?;
    ensure!(!postrm.contains("rm -rf") && !postrm.contains("rm -r"), "postrm must never delete the state:\n{postrm}");

    // bad input
    for (flag, value, says) in [("--version", "x y", "not a Debian version"), ("--compression", "lz", "must be xz")] {
        let err = script("deploy/deb/build.sh", &["--bin", bin_s, flag, value])?.refused()?;
        ensure!(err.contains(says), "build.sh {flag} {value}: {err}");
    }
    Ok(())
}

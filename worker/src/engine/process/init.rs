//! The task's init: the small program between the engine and a task's program, in three steps that are each a fresh
//! `execve` of the binary running the engine (`skep`, or `skep-task-init` in tests), selected by the hidden
//! argument [`INIT_ARG`]. Each step is single-threaded, so it may change namespaces and credentials freely, and needs
//! no `unsafe` (every hazard of a `fork` without `exec` is avoided by exec'ing).
//!
//! ```text
//! engine ──spawn──▶ outer      own session; joins the task's cgroups; oom_score_adj -1000; setns(netns);
//!                     │        unshare(pid, mount, uts, ipc[, net]); reports the supervisor's PID
//!                     └─spawn─▶ supervise   PID 1 of the new PID namespace, own session and process group;
//!                                 │        mounts, hostname, sysctls, hardening, loopback up;
//!                                 │        reaps every process, writes the program's code to `<task dir>/exit`,
//!                                 │        copies the program's stdout and stderr (pipes) to `<task dir>/logs`
//!                                 └─spawn─▶ exec   oom_score_adj 0; bounding set; groups, gid, uid;
//!                                                  no_new_privs; chdir; execve(program) with the task's env
//!
//! engine ──spawn──▶ health     own process group (the engine kills it on timeout); joins the task's cgroups;
//!                     │        setns into the supervisor's net, uts, ipc and pid namespaces; opens its mount one
//!                     └─spawn─▶ check  setns into the task's mount namespace (so into its root, an image's too),
//!                                      then the `exec` step with the healthcheck's command instead of the program
//! ```
//!
//! # Reporting to the engine
//! The engine gives `outer` a pipe as its stdin; every step inherits it. A step that fails writes `error <text>` (or
//! `notfound <text>`) to it and exits; `outer` writes `supervisor <pid> <start time>`. Each step keeps a
//! close-on-exec copy and puts `/dev/null` on its stdin before going on, so the engine reads end-of-file exactly when
//! the program has been exec'd (or everything has failed): that is when `start` returns.
//!
//! # Why these steps
//! `outer` exists because a new PID namespace only applies to the children of the process that makes it; it stays
//! as the supervisor's parent (the engine's child, reaped by it) and exits with its status. `supervise` is PID 1 of
//! the task: when it exits the kernel kills whatever the program left behind; as PID 1 it is immune to the stop
//! signal sent to the task's process group (and blocks it besides, for tasks without namespaces). `exec` is separate
//! so the supervisor keeps its privileges while the program drops them. A healthcheck's `check` step enters the
//! task's mount namespace itself, after its own `execve`: this binary may need the host's dynamic loader, which an
//! image root does not have, and once it is loaded, exec'ing the check's command needs nothing else from the host.

use super::plan::InitPlan;
use super::{caps, logs, mounts, procfs, sysctl};
use crate::logs::record::LineSplitter;
use crate::logs::writer::SegmentWriter;
use skep_api::logs::LogStream;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The hidden first argument that makes a binary act as the task init.
pub const INIT_ARG: &str = "__skep-task-init";

/// Exit code of a step that could not set the task up (Docker's "container failed to start").
const SETUP_FAILED: i32 = 125;

/// Runs the init step the arguments name, if they name one: call first thing in `main` of every binary that may be
/// an engine's init (`skep`, `skep-task-init`), and exit with the code it returns.
pub fn run_if_requested() -> Option<i32> {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    if args.first().map(String::as_str) != Some(INIT_ARG) {
        return None;
    }
    let dir = args.get(2).map(PathBuf::from);
    // `health <dir> <supervisor pid> -- argv...` and `check <dir> -- argv...`
    let command = |from: usize| -> Option<Vec<String>> {
        (args.get(from).map(String::as_str) == Some("--")).then(|| args[from + 1..].to_vec()).filter(|a| !a.is_empty())
    };
    Some(match (args.get(1).map(String::as_str), dir) {
        (Some("probe"), _) => probe(),
        (Some("outer"), Some(d)) => outer(&d),
        (Some("supervise"), Some(d)) => supervise(&d),
        (Some("exec"), Some(d)) => exec(&d),
        (Some("health"), Some(d)) => match (args.get(3).and_then(|p| p.parse::<u32>().ok()), command(4)) {
            (Some(pid), Some(argv)) => health(&d, pid, &argv),
            _ => 2,
        },
        (Some("check"), Some(d)) => match command(3) {
            Some(argv) => check(&d, argv),
            None => 2,
        },
        _ => {
            eprintln!("usage: {INIT_ARG} probe|outer|supervise|exec <task dir> | health <task dir> <pid> -- <command>");
            2
        }
    })
}

/// The report pipe (a close-on-exec copy of stdin).
struct Report(Option<File>);

impl Report {
    fn take() -> Report {
        Report(std::io::stdin().as_fd().try_clone_to_owned().ok().map(File::from))
    }

    fn send(&mut self, kind: &str, text: &str) {
        if let Some(f) = &mut self.0 {
            let _ = writeln!(f, "{kind} {}", text.replace('\n', " "));
        }
    }

    /// Reports a failure; returns the exit code to leave with.
    fn fail(mut self, text: &str) -> i32 {
        self.send("error", text);
        SETUP_FAILED
    }
}

/// Puts `/dev/null` on stdin: this process no longer holds the report pipe's stdin copy.
fn release_stdin() {
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
}

/// The init binary itself (also when it was replaced on disk since).
fn self_exe() -> Command {
    let mut c = Command::new("/proc/self/exe");
    c.env_clear();
    c
}

/// Like a shell's `$?`: the code, or 128 + the signal.
fn code_of(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Checks that this host can make the namespaces tasks get (the engine's probe).
fn probe() -> i32 {
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET;
    match nix::sched::unshare(flags) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("unshare: {e}");
            1
        }
    }
}

fn outer(dir: &Path) -> i32 {
    let mut report = Report::take();
    let plan = match InitPlan::read(dir) {
        Ok(p) => p,
        Err(e) => return report.fail(&e),
    };
    // out of the engine's session: nothing sent to the daemon's process group or terminal reaches the task
    let _ = nix::unistd::setsid();
    // the init steps never are the OOM killer's choice (the program resets its own score)
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    set_name(c"skep-init");
    // the supervisor's stat is read through this host /proc: it mounts its own /proc in the mount namespace this
    // step shares with it
    let host_proc = match File::open("/proc") {
        Ok(f) => f,
        Err(e) => return report.fail(&format!("opening /proc: {e}")),
    };
    let me = std::process::id().to_string();
    for cg in &plan.cgroups {
        if let Err(e) = std::fs::write(cg.join("cgroup.procs"), &me) {
            return report.fail(&format!("joining the cgroup {}: {e}", cg.display()));
        }
    }
    if plan.namespaces {
        if let Some(ns) = &plan.netns {
            let joined = File::open(ns).map_err(|e| e.to_string()).and_then(|f| {
                nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())
            });
            if let Err(e) = joined {
                return report.fail(&format!("joining the network namespace {}: {e}", ns.display()));
            }
        }
        let mut flags =
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
        if plan.netns.is_none() {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        if let Err(e) = nix::sched::unshare(flags) {
            return report.fail(&format!("making the task's namespaces: {e}"));
        }
    }
    let mut child = match self_exe().arg(INIT_ARG).arg("supervise").arg(dir).spawn() {
        Ok(c) => c,
        Err(e) => return report.fail(&format!("starting the supervisor: {e}")),
    };
    // the supervisor is our child and not reaped yet, so its stat is there even if it is already done
    let pid = child.id();
    let start = read_stat_in(&host_proc, pid).map_or(0, |s| s.start_time);
    report.send("supervisor", &format!("{pid} {start}"));
    drop(report);
    release_stdin();
    match child.wait() {
        Ok(status) => code_of(status),
        Err(_) => SETUP_FAILED,
    }
}

/// `/proc/<pid>/stat` under an open `/proc` directory.
fn read_stat_in(proc_dir: &File, pid: u32) -> Option<procfs::Stat> {
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(proc_dir, format!("{pid}/stat").as_str(), flags, nix::sys::stat::Mode::empty()).ok()?;
    procfs::parse_stat(&std::io::read_to_string(File::from(fd)).ok()?)
}

/// Names this step in `ps` (each is an exec of `/proc/self/exe`, which `ps` would show as `exe`).
fn set_name(name: &std::ffi::CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

/// Everything the supervisor sets up inside the task's namespaces, before the program starts. With an image root:
/// the root is mounted and furnished, the task's mounts land inside it and the loopback comes up (with the host's
/// `ip`); the pivot into that root, the sysctls and the hardening are then the exec step's first acts
/// ([`enter_root`]): this binary may need the host's dynamic loader, so it is started while the host's root is
/// still there, and pivoting moves the supervisor along (the kernel moves every process of the namespace).
fn set_up(plan: &InitPlan) -> Result<(), String> {
    mounts::make_root_slave()?;
    let root = match &plan.rootfs {
        Some(r) => {
            mounts::mount_rootfs(r)?;
            r.merged.clone()
        }
        None => PathBuf::from("/"),
    };
    for step in &plan.mounts {
        mounts::apply(step, &root)?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("setting the hostname {h:?}: {e}"))?;
    }
    if let Some(ip) = &plan.ip {
        let up = Command::new(ip).args(["link", "set", "lo", "up"]).stdin(Stdio::null()).env_clear().status();
        if !up.is_ok_and(|s| s.success()) {
            eprintln!("skep: could not bring the loopback interface up");
        }
    }
    if plan.rootfs.is_none() {
        finish_root(plan)?;
    }
    Ok(())
}

/// The sysctls and Docker's read-only and masked paths, once the task's root is final.
fn finish_root(plan: &InitPlan) -> Result<(), String> {
    sysctl::apply(&plan.sysctls)?;
    if plan.harden {
        mounts::harden()?;
    }
    Ok(())
}

/// The exec step's first act with an image root: pivot into it, then [`finish_root`].
fn enter_root(plan: &InitPlan) -> Result<(), String> {
    if let Some(r) = plan.rootfs.as_ref().filter(|_| plan.namespaces) {
        mounts::pivot(&r.merged, r.read_only)?;
        finish_root(plan)?;
    }
    Ok(())
}

fn supervise(dir: &Path) -> i32 {
    let report = Report::take();
    let plan = match InitPlan::read(dir) {
        Ok(p) => p,
        Err(e) => return report.fail(&e),
    };
    set_name(c"skep-supervisor");
    let _ = nix::unistd::setsid();
    if let Ok(sig) = Signal::try_from(plan.stop_signal) {
        let mut set = SigSet::empty();
        set.add(sig);
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    }
    // the exit file is written through this descriptor, whatever the task mounts over the task directory
    let dir_fd = match nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return report.fail(&format!("opening {}: {e}", dir.display())),
    };
    // the program's output goes to the task's log segments, written through this descriptor for the same reason
    let logs_dir = nix::fcntl::openat(
        &dir_fd,
        logs::LOG_DIR,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    let writer = match logs_dir.map_err(std::io::Error::from).and_then(|fd| SegmentWriter::create(fd, plan.logs)) {
        Ok(w) => w,
        Err(e) => return report.fail(&format!("opening the task's log directory: {e}")),
    };
    if plan.namespaces {
        if let Err(e) = set_up(&plan) {
            return report.fail(&e);
        }
    }
    let pipes = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).and_then(|o| Ok((o, nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return report.fail(&format!("making the output pipes: {e}")),
    };
    // the exec step clears the signal mask this step set before it runs the program (std's spawn keeps it); it
    // gets the plan in its environment, since the task directory is not inside an image root
    let json = match serde_json::to_string(&plan) {
        Ok(j) => j,
        Err(e) => return report.fail(&format!("encoding the plan: {e}")),
    };
    let child = match self_exe()
        .arg(INIT_ARG)
        .arg("exec")
        .arg(dir)
        .env(super::plan::PLAN_ENV, json)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return report.fail(&format!("starting the program: {e}")),
    };
    drop(report);
    release_stdin();
    let main = nix::unistd::Pid::from_raw(child.id() as i32);
    let code = copy_output_until_exit(main, [File::from(out_r), File::from(err_r)], writer);
    let flags = nix::fcntl::OFlag::O_WRONLY
        | nix::fcntl::OFlag::O_CREAT
        | nix::fcntl::OFlag::O_TRUNC
        | nix::fcntl::OFlag::O_CLOEXEC;
    if let Ok(fd) = nix::fcntl::openat(&dir_fd, "exit", flags, nix::sys::stat::Mode::from_bits_truncate(0o644)) {
        let _ = writeln!(File::from(fd), "{code}");
    }
    code
}

/// Now, in Unix nanoseconds.
fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// The supervisor's loop while the program runs: reaps every process (it is PID 1), and writes what the program
/// prints on `outputs` (stdout, stderr) to the log segments as timestamped records. Returns the program's code once
/// it has exited, after reading what is left in the pipes (bounded: a process it left behind may keep writing).
fn copy_output_until_exit(main: nix::unistd::Pid, outputs: [File; 2], mut writer: SegmentWriter) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::io::Read as _;
    use std::os::fd::AsFd as _;
    let mut splitters = [LineSplitter::new(LogStream::Stdout), LineSplitter::new(LogStream::Stderr)];
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 << 10];
    let mut records = Vec::with_capacity(64 << 10);
    // writes what was read; a failing disk must not stop the task, so errors are dropped (the output with them)
    let mut flush = |records: &mut Vec<u8>| {
        let _ = writer.write(records);
        records.clear();
    };
    let code = loop {
        if let Some(code) = reap(main) {
            break code;
        }
        let idx: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> =
                idx.iter().map(|&i| PollFd::new(outputs[i].as_fd(), PollFlags::POLLIN)).collect();
            match poll(&mut fds, 100u16) {
                Ok(n) if n > 0 => {}
                _ => continue,
            }
            idx.iter().zip(&fds).filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty())).map(|(&i, _)| i).collect()
        };
        for i in ready {
            match (&outputs[i]).read(&mut buf) {
                Ok(0) | Err(_) => {
                    open[i] = false;
                    splitters[i].finish(now_ns(), &mut records);
                }
                Ok(n) => splitters[i].push(now_ns(), &buf[..n], &mut records),
            }
        }
        flush(&mut records);
    };
    // what the program wrote before it exited; processes it left behind are killed when this step (PID 1) exits
    for i in 0..2 {
        if !open[i] {
            continue;
        }
        let _ = nix::fcntl::fcntl(outputs[i].as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        let mut left = MAX_DRAIN;
        while left > 0 {
            match (&outputs[i]).read(&mut buf) {
                Ok(n) if n > 0 => {
                    splitters[i].push(now_ns(), &buf[..n], &mut records);
                    left = left.saturating_sub(n);
                }
                _ => break,
            }
        }
        splitters[i].finish(now_ns(), &mut records);
    }
    flush(&mut records);
    code
}

/// Most bytes read from the pipes after the program exited.
const MAX_DRAIN: usize = 4 << 20;

/// Reaps every exited child; the program's code once it is one of them.
fn reap(main: nix::unistd::Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            // no children left at all: the program is gone without a status we saw
            Err(nix::errno::Errno::ECHILD) => return Some(SETUP_FAILED),
            Err(_) => return None,
        }
    }
}

/// Runs a healthcheck's command as the task's program runs: in its cgroups and namespaces (entered through its
/// supervisor, `pid`), then as its user with its capabilities and environment (the `check` step). Exits with the
/// command's code; a check that cannot be set up fails (125), which counts as a failed check, as in Docker.
fn health(dir: &Path, pid: u32, argv: &[String]) -> i32 {
    let plan = match InitPlan::read(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return SETUP_FAILED;
        }
    };
    set_name(c"skep-health");
    let _ = std::fs::write("/proc/self/oom_score_adj", "0");
    // the path this binary was started from, for the check step (started in the host's mount namespace)
    let me = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthcheck: /proc/self/exe: {e}");
            return SETUP_FAILED;
        }
    };
    let own = std::process::id().to_string();
    for cg in &plan.cgroups {
        if let Err(e) = std::fs::write(cg.join("cgroup.procs"), &own) {
            eprintln!("healthcheck: joining the cgroup {}: {e}", cg.display());
            return SETUP_FAILED;
        }
    }
    // the mount namespace is the check step's to enter (see the module notes), through this descriptor, its stdin
    let mut mnt = None;
    if plan.namespaces {
        // every namespace is opened before any is entered
        let kinds = [
            ("net", CloneFlags::CLONE_NEWNET),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("pid", CloneFlags::CLONE_NEWPID),
        ];
        let mut opened = Vec::new();
        for (name, flag) in kinds {
            match File::open(format!("/proc/{pid}/ns/{name}")) {
                Ok(f) => opened.push((name, flag, f)),
                Err(e) => {
                    eprintln!("healthcheck: the task's {name} namespace: {e}");
                    return SETUP_FAILED;
                }
            }
        }
        match File::open(format!("/proc/{pid}/ns/mnt")) {
            Ok(f) => mnt = Some(f),
            Err(e) => {
                eprintln!("healthcheck: the task's mnt namespace: {e}");
                return SETUP_FAILED;
            }
        }
        for (name, flag, f) in &opened {
            if let Err(e) = nix::sched::setns(f.as_fd(), *flag) {
                eprintln!("healthcheck: entering the task's {name} namespace: {e}");
                return SETUP_FAILED;
            }
        }
    }
    let mut cmd = Command::new(me);
    cmd.env_clear().arg(INIT_ARG).arg("check").arg(dir).arg("--").args(argv);
    cmd.stdin(mnt.map_or_else(Stdio::null, Stdio::from));
    match cmd.status() {
        Ok(status) => code_of(status),
        Err(e) => {
            eprintln!("healthcheck: starting the check: {e}");
            SETUP_FAILED
        }
    }
}

/// A healthcheck's own step: into the task's mount namespace, which is also into its root (an image's, pivoted into
/// by the program's exec step), through the descriptor the `health` step gives as stdin; then the rest of the `exec`
/// step with the check's command (stdin `/dev/null`, as Docker's probes have). The plan is read first: the task
/// directory is not inside an image root.
fn check(dir: &Path, argv: Vec<String>) -> i32 {
    let mut plan = match InitPlan::read(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return SETUP_FAILED;
        }
    };
    if plan.namespaces {
        if let Err(e) = nix::sched::setns(std::io::stdin().as_fd(), CloneFlags::CLONE_NEWNS) {
            eprintln!("healthcheck: entering the task's mount namespace: {e}");
            return SETUP_FAILED;
        }
    }
    release_stdin();
    plan.argv = argv;
    // what would go to the engine goes to stderr, which the engine logs when the check fails
    let report = Report(std::io::stderr().as_fd().try_clone_to_owned().ok().map(File::from));
    run_program(report, plan)
}

/// The program's last step: into the image root (when the task has one), then [`run_program`].
fn exec(dir: &Path) -> i32 {
    let report = Report::take();
    let plan = match InitPlan::read_env_or(dir) {
        Ok(p) => p,
        Err(e) => return report.fail(&e),
    };
    if let Err(e) = enter_root(&plan) {
        return report.fail(&e);
    }
    run_program(report, plan)
}

/// Drops to the plan's credentials and execs its program, in the root this process is in; returns only on failure.
fn run_program(mut report: Report, plan: InitPlan) -> i32 {
    let _ = std::fs::write("/proc/self/oom_score_adj", "0");
    if let Some(names) = &plan.capabilities {
        if let Err(e) = caps::install(names) {
            return report.fail(&e);
        }
    }
    if let Some(u) = &plan.user {
        let groups: Vec<nix::unistd::Gid> = u.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
        let switched = nix::unistd::setgroups(&groups)
            .and_then(|()| nix::unistd::setgid(nix::unistd::Gid::from_raw(u.gid)))
            .and_then(|()| nix::unistd::setuid(nix::unistd::Uid::from_raw(u.uid)));
        if let Err(e) = switched {
            return report.fail(&format!("switching to user {}:{}: {e}", u.uid, u.gid));
        }
    }
    if plan.no_new_privs {
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            return report.fail(&format!("setting no_new_privs: {e}"));
        }
    }
    if let Err(e) = nix::unistd::chdir(&plan.dir) {
        return report.fail(&format!("chdir to cwd ({:?}) set in config failed: {e}", plan.dir.display().to_string()));
    }
    let Some(prog) = plan.argv.first() else { return report.fail("no program") };
    let path = plan.env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(super::DEFAULT_PATH);
    let program = match super::lookup(prog, path, &plan.dir) {
        Ok(p) => p,
        Err(e) => {
            let kind = if e.is_not_found() { "notfound" } else { "error" };
            report.send(kind, &e.to_string());
            return 127;
        }
    };
    // the supervisor blocks the stop signal for itself, and a signal mask survives both spawn and execve: without
    // this the program never sees the stop signal and every stop waits out the grace period
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        return report.fail(&format!("clearing the signal mask: {e}"));
    }
    let mut cmd = Command::new(&program);
    cmd.arg0(prog).args(&plan.argv[1..]).env_clear().stdin(Stdio::null());
    cmd.envs(plan.env.iter().filter_map(|kv| kv.split_once('=')));
    // only returns on failure; on success the report pipe closes with the exec
    let e = cmd.exec();
    report.send("error", &format!("exec {}: {e}", program.display()));
    126
}

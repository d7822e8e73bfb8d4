//! Markdown tables of the results, with the skep/etcd ratios.

use crate::failover::Trial;
use crate::store::Point;
use crate::System;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

pub fn store_table(points: &[Point], value_size: usize, seconds: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Store writes ({value_size} B values, {} s per point, all clients on the leader)\n", seconds.as_secs());
    let _ = writeln!(s, "| system | clients | writes/s | p50 ms | p99 ms | max ms | errors |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            p.system,
            p.clients,
            p.writes_per_sec(),
            ms(p.hist.value_at_quantile(0.5)),
            ms(p.hist.value_at_quantile(0.99)),
            ms(p.hist.max()),
            p.errors
        );
    }
    let mut clients: Vec<usize> = points.iter().map(|p| p.clients).collect();
    clients.dedup();
    clients.sort_unstable();
    clients.dedup();
    let find = |sys: &str, n: usize| points.iter().find(|p| p.system == sys && p.clients == n);
    for (a, b) in [("skep", "etcd"), ("skep", "skep-plaintext")] {
        ratio_rows(&mut s, &clients, a, b, |sys, n| find(sys, n));
    }
    for p in points.iter().filter(|p| p.errors > 0) {
        let _ = writeln!(
            s,
            "\n{} clients={}: {} failed writes, first: {}",
            p.system,
            p.clients,
            p.errors,
            p.first_error.as_deref().unwrap_or("")
        );
    }
    s
}

/// A table of `a`/`b` ratios for each client count both were run with (none if either is missing).
fn ratio_rows<'a>(
    s: &mut String,
    clients: &[usize],
    a: &str,
    b: &str,
    find: impl Fn(&str, usize) -> Option<&'a Point>,
) {
    let mut header = false;
    for &n in clients {
        let (Some(k), Some(e)) = (find(a, n), find(b, n)) else { continue };
        if !header {
            let _ = writeln!(s, "\n| clients | writes/s {a}/{b} | p50 {a}/{b} | p99 {a}/{b} |");
            let _ = writeln!(s, "|---:|---:|---:|---:|");
            header = true;
        }
        let q = |p: &Point, x: f64| p.hist.value_at_quantile(x) as f64;
        let _ = writeln!(
            s,
            "| {n} | {} | {} | {} |",
            ratio(k.writes_per_sec(), e.writes_per_sec()),
            ratio(q(k, 0.5), q(e, 0.5)),
            ratio(q(k, 0.99), q(e, 0.99)),
        );
    }
}

pub fn failover_table(rows: &[(System, Vec<Trial>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Leader failover (SIGKILL leader → first acknowledged write through a survivor)\n");
    let _ = writeln!(s, "| system | trials | acknowledged | p50 s | p99 s | max s | min s |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for (sys, trials) in rows {
        let mut h = crate::store::new_hist();
        for t in trials.iter().filter_map(|t| t.recovery) {
            h.saturating_record(t.as_micros().max(1) as u64);
        }
        let ok = h.len();
        let sec = |us: u64| if ok > 0 { format!("{:.3}", us as f64 / 1e6) } else { "n/a".into() };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            format!("{sys:?}").to_lowercase(),
            trials.len(),
            ok,
            sec(h.value_at_quantile(0.5)),
            sec(h.value_at_quantile(0.99)),
            sec(h.max()),
            sec(h.min()),
        );
    }
    s
}

pub fn fsync_table(rows: &[(&'static str, Histogram<u64>)], count: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Disk fsync ({count} × write 4 KiB + fdatasync)\n");
    let _ = writeln!(s, "| mode | p50 ms | p99 ms | max ms |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for (mode, h) in rows {
        let _ = writeln!(s, "| {mode} | {} | {} | {} |", ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()));
    }
    s
}

//! The web view in a real browser: headless Chromium in the manager's namespace opens the page the daemon serves on
//! its default loopback address (`--web-addr`, 127.0.0.1:2378) and shows the same tasks as `service ps` (IDs,
//! states, nodes), then follows a `service scale` and a worker killed (its column goes down, its tasks are replaced
//! elsewhere) through the stream alone, and fits a phone's screen. Screenshots of each step are kept under the
//! target directory (the path is printed).

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::browser::{require_chromium, Browser};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Bound on a service converging, and on the page following it.
const CONVERGE: Duration = Duration::from_secs(40);
/// The daemon's default web view address, inside each host's namespace.
const URL: &str = "http://127.0.0.1:2378/ui/";

/// What the page shows: (task ID, state, node ID) of every card.
const CARDS_JS: &str = "JSON.stringify([...document.querySelectorAll('.card')]\
    .map(e => [e.dataset.id, e.dataset.state, e.closest('.col').dataset.node]))";

fn page_cards(b: &mut Browser) -> Result<BTreeSet<(String, String, String)>> {
    let v = b.eval(CARDS_JS)?;
    let list: Vec<(String, String, String)> = serde_json::from_str(v.as_str().context("a JSON string")?)?;
    Ok(list.into_iter().collect())
}

/// What `service ps` lists: every task's ID (`-q --no-trunc`), with the state and node the API gives for it.
fn ps(c: &Cluster, service: &str) -> Result<BTreeSet<(String, String, String)>> {
    let listing = c.skep_ok(0, &["service", "ps", "-q", "--no-trunc", service])?;
    let ids: BTreeSet<String> = listing.lines().map(String::from).collect();
    let tasks = c.tasks(0, service)?;
    let field = |t: &Value, p: &str| t.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let all: BTreeSet<(String, String, String)> =
        tasks.iter().map(|t| (field(t, "/ID"), field(t, "/Status/State"), field(t, "/NodeID"))).collect();
    let listed: BTreeSet<String> = all.iter().map(|(id, ..)| id.clone()).collect();
    ensure!(listed == ids, "service ps lists {ids:?}, the API {listed:?}");
    Ok(all)
}

/// Waits until the page shows exactly the tasks `service ps` lists, in their states and on their nodes.
fn page_matches_ps(c: &Cluster, b: &mut Browser, what: &str) -> Result<()> {
    wait_until(what, CONVERGE, || -> Result<()> {
        let (page, want) = (page_cards(b)?, ps(c, "web")?);
        ensure!(page == want, "the page shows {page:?}\nservice ps lists {want:?}");
        Ok(())
    })
}

fn artifacts() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("t48-web-view");
    std::fs::create_dir_all(&dir)?;
    eprintln!("screenshots in {}", dir.display());
    Ok(dir)
}

#[test]
fn the_page_shows_the_tasks_of_service_ps_and_follows_a_scale_and_a_node_going_down() -> Result<()> {
    if !require_root_and_netns() || !require_chromium() {
        return Ok(());
    }
    let shots = artifacts()?;
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    let stack = "com.docker.stack.namespace=shop";
    c.skep_ok(0, &["service", "create", "--name", "web", "--replicas", "3", "--label", stack,
        "-d", "busybox", "sleep", "3600"])?;
    c.wait_running(0, "web", 3, CONVERGE)?;

    let mut b = Browser::launch(&c.host(0).ns, 1280, 800, &shots.join("chromium.log"))?;
    b.open(URL)?;
    wait_until("the page's first render", CONVERGE, || -> Result<()> {
        ensure!(b.eval("document.body.dataset.ready === '1'")? == Value::Bool(true), "not rendered yet");
        Ok(())
    })?;
    page_matches_ps(&c, &mut b, "the page to show the tasks of service ps")?;
    // every node is a column, the manager marked leader; the stack is a filter
    let cols = "JSON.stringify([...document.querySelectorAll('.col')].map(e => [e.dataset.node, e.dataset.leader]))";
    let cols = b.eval(cols)?;
    let cols: Vec<(String, String)> = serde_json::from_str(cols.as_str().context("a JSON string")?)?;
    let manager = c.node_id(0)?;
    let want: BTreeSet<String> = (0..3).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    assert_eq!(cols.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>(), want, "{cols:?}");
    let leaders: Vec<String> = cols.iter().filter(|(_, l)| l == "1").map(|(n, _)| n.clone()).collect();
    assert_eq!(leaders, [manager], "{cols:?}");
    let stacks = b.eval("[...document.querySelectorAll('#f-stack option')].map(o => o.value).join(',')")?;
    assert_eq!(stacks, Value::String(",shop".into()));
    b.screenshot(&shots.join("1-created.png"))?;

    c.skep_ok(0, &["service", "scale", "-d", "web=7"])?;
    c.wait_running(0, "web", 7, CONVERGE)?;
    page_matches_ps(&c, &mut b, "the page to follow the scale to 7")?;
    b.screenshot(&shots.join("2-scaled.png"))?;

    let worker = c.node_id(2)?;
    c.kill(2)?;
    let col_state = format!("document.querySelector('.col[data-node=\"{worker}\"]').dataset.state");
    wait_until("the killed worker's column to show it down", CONVERGE, || -> Result<()> {
        let s = b.eval(&col_state)?;
        ensure!(s == Value::String("down".into()), "its column says {s}");
        Ok(())
    })?;
    // the dead worker's tasks stay `running` in the store (their last report) until they are replaced: wait for that
    let current_on_worker = format!(
        "[...document.querySelectorAll('.col[data-node=\"{worker}\"] .card')]\
         .filter(e => !e.classList.contains('old')).length"
    );
    wait_until("the page to show the dead worker's tasks replaced", CONVERGE, || -> Result<()> {
        let n = b.eval(&current_on_worker)?;
        ensure!(n.as_u64() == Some(0), "{n} current tasks still on the dead worker");
        Ok(())
    })?;
    c.wait_running(0, "web", 7, CONVERGE)?;
    page_matches_ps(&c, &mut b, "the page to follow the tasks replaced after the worker went down")?;
    b.screenshot(&shots.join("3-worker-down.png"))?;
    b.eval("document.documentElement.dataset.theme = 'dark'")?;
    b.screenshot(&shots.join("4-dark.png"))?;
    // a phone's screen: the page stays usable (a column fills most of the width)
    let phone = serde_json::json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true });
    b.call("Emulation.setDeviceMetricsOverride", phone)?;
    let col = b.eval("document.querySelector('.col').getBoundingClientRect().width")?;
    assert!(col.as_f64().is_some_and(|w| w > 300.0 && w < 390.0), "a column {col} px wide on a 390 px screen");
    b.screenshot(&shots.join("5-phone.png"))?;
    drop(b);
    c.pass();
    Ok(())
}

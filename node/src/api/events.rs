//! `GET /events`: the swarm's events as Docker streams them, one JSON object per line: first the recent ones from
//! `since` (if given), then the live ones until `until` (if given) or until the client goes away.

use super::{filters, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skep_api::docker::Event;
use skep_api::filters::Filters;
use std::collections::HashMap;
use futures::StreamExt as _;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;

/// The filter keys the docker CLI may send; those that name local objects (containers, images, volumes…) match no
/// swarm event.
const KEYS: &[&str] =
    &["type", "event", "service", "node", "network", "secret", "config", "scope", "label", "container", "image", "volume", "daemon", "plugin"];

/// `since`/`until` as Docker takes them: Unix seconds with an optional fraction (`1700000000.123456789`).
pub(super) fn parse_time(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty()) else { return Ok(None) };
    let bad = || ApiError::invalid(format!("invalid value for {key}: {v:?}"));
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{digits:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos)))
}

/// Whether `e` passes the filters (values of one key OR-ed, keys AND-ed, as Docker's).
fn matches(f: &Filters, e: &Event) -> bool {
    let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    let names = |typ: &str, v: &str| e.typ == typ && (e.actor.id == v || attr("name") == v);
    f.matches_any("type", |v| e.typ == v)
        && f.matches_any("event", |v| e.action == v)
        && f.matches_any("scope", |v| v == "swarm")
        && f.matches_any("service", |v| names("service", v) || (e.typ == "task" && (attr("service") == v || attr("service.name") == v)))
        && f.matches_any("node", |v| names("node", v) || (e.typ == "task" && attr("node") == v))
        && f.matches_any("network", |v| names("network", v))
        && f.matches_any("secret", |v| names("secret", v))
        && f.matches_any("config", |v| names("config", v))
        && ["label", "container", "image", "volume", "daemon", "plugin"].iter().all(|k| !f.has(k))
}

fn line(e: &Event) -> Bytes {
    let mut b = serde_json::to_vec(e).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

pub(super) async fn events(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, KEYS)?;
    let since = parse_time(&q, "since")?;
    let until = parse_time(&q, "until")?;
    let (recent, live) = node.follow_events();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    let in_range = move |e: &Event| since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u);
    let past: Vec<Bytes> =
        if since.is_some() { recent.iter().filter(|e| in_range(e) && matches(&f, e)).map(line).collect() } else { Vec::new() };
    // `until` in the past: what was kept, then the end
    let follow_for: Option<Duration> = match until {
        Some(u) if u <= now => Some(Duration::ZERO),
        Some(u) => Some(Duration::from_nanos((u - now) as u64)),
        None => None,
    };
    let deadline = follow_for.map(|d| tokio::time::Instant::now() + d);
    let stream = futures::stream::iter(past.into_iter().map(Ok::<_, std::convert::Infallible>)).chain(futures::stream::unfold(
        (live, f, deadline),
        move |(mut rx, f, deadline)| async move {
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return None,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Ok(e) if in_range(&e) && matches(&f, &e) => return Some((Ok(line(&e)), (rx, f, deadline))),
                    Ok(_) => continue,
                    // a follower too slow for the feed: end the stream rather than skip events silently
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                }
            }
        },
    ));
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(k: &str, v: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_string(), v.to_string())])
    }

    #[test]
    fn times_are_unix_seconds_with_an_optional_fraction() {
        assert_eq!(parse_time(&q("since", "1700000000"), "since").unwrap(), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_time(&q("since", "1700000000.5"), "since").unwrap(), Some(1_700_000_000_500_000_000));
        assert_eq!(parse_time(&q("since", ""), "since").unwrap(), None);
        assert!(parse_time(&q("since", "yesterday"), "since").is_err());
    }

    #[test]
    fn filters_match_as_dockers() {
        let mut e = Event { typ: "task".into(), action: "update".into(), scope: "swarm".into(), ..Default::default() };
        e.actor.id = "t1".into();
        e.actor.attributes.insert("service".into(), "s1".into());
        e.actor.attributes.insert("service.name".into(), "web".into());
        e.actor.attributes.insert("node".into(), "n1".into());
        let f = |json: &str| Filters::parse(json).unwrap();
        assert!(matches(&f(""), &e));
        assert!(matches(&f(r#"{"type":{"task":true,"service":true}}"#), &e));
        assert!(!matches(&f(r#"{"type":{"node":true}}"#), &e));
        assert!(matches(&f(r#"{"service":{"web":true}}"#), &e));
        assert!(matches(&f(r#"{"node":{"n1":true},"event":{"update":true}}"#), &e));
        assert!(!matches(&f(r#"{"node":{"n2":true}}"#), &e));
        assert!(!matches(&f(r#"{"container":{"x":true}}"#), &e), "local objects match no swarm event");
    }
}

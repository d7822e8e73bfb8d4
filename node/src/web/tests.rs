use super::*;
use axum::http::Request as HttpRequest;
use http_body_util::BodyExt as _;
use skep_manager::store::ClusterState;
use std::sync::Arc;
use tower::ServiceExt as _;

fn node() -> (NodeHandle, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("skep-web-{}", rand::random::<u64>()));
    let node = NodeHandle::new(crate::node::NodeOptions {
        data_root: dir.clone(),
        engine: "process".into(),
        net_prefix: None,
        log_limits: Default::default(),
        insecure_registries: vec![],
        host_programs: Default::default(),
    })
    .unwrap();
    (node, dir)
}

fn get(path: &str, host: &str) -> HttpRequest<Body> {
    HttpRequest::get(path).header(header::HOST, host).body(Body::empty()).unwrap()
}

/// The web view's own listener's router, with requests tagged as its listener tags them.
async fn call(node: &NodeHandle, mut req: HttpRequest<Body>) -> Response {
    req.extensions_mut().insert(ApiTransport::InsecureLoopback);
    let router = routes()
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(axum::middleware::from_fn(loopback_guard))
        .with_state(node.web().clone());
    router.oneshot(req).await.unwrap()
}

async fn text(r: Response) -> String {
    String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_and_a_strict_policy() {
    let (node, dir) = node();
    for (path, ct, needle) in [
        ("/ui/", "text/html; charset=utf-8", "<script src=\"app.js\""),
        ("/ui/app.js", "text/javascript; charset=utf-8", "fetch('watch'"),
        ("/ui/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"),
    ] {
        let r = call(&node, get(path, "127.0.0.1:2378")).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], ct, "{path}");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(text(r).await.contains(needle), "{path}");
    }
    let r = call(&node, get("/ui", "localhost:2378")).await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()[header::LOCATION], "/ui/");
    assert!(!INDEX_HTML.contains("http:") && !INDEX_HTML.contains("https:"), "no CDN, nothing from elsewhere");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn its_own_listener_is_read_only_serves_nothing_else_and_refuses_other_sites() {
    let (node, dir) = node();
    for path in ["/info", "/nodes", "/tasks", "/ui/nothing"] {
        assert_eq!(call(&node, get(path, "127.0.0.1:2378")).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let req = HttpRequest::builder().method(method).uri("/ui/").header(header::HOST, "127.0.0.1");
        let req = req.body(Body::empty());
        assert_eq!(call(&node, req.unwrap()).await.status(), StatusCode::NOT_FOUND, "{method}");
    }
    // a rebound name, or another site's page calling
    assert_eq!(call(&node, get("/ui/watch", "evil.example:2378")).await.status(), StatusCode::FORBIDDEN);
    let mut req = get("/ui/watch", "127.0.0.1:2378");
    req.headers_mut().insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
    assert_eq!(call(&node, req).await.status(), StatusCode::FORBIDDEN);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn the_stream_is_a_snapshot_then_deltas_and_a_node_without_a_manager_says_so() {
    let (node, dir) = node();
    let r = call(&node, get("/ui/watch", "127.0.0.1:2378")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(r).await.contains("not a swarm manager"));

    let mut st = ClusterState::default();
    let task = skep_api::docker::Task { id: "t1".into(), service_id: "s1".into(), ..Default::default() };
    st.tasks.insert("t1".into(), task);
    let generation = node.web().replace(Some(hub::View { store: Arc::new(st.clone()), leader: None }));
    let r = call(&node, get("/ui/watch", "127.0.0.1:2378")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let mut body = r.into_body().into_data_stream();
    let first = body.next().await.unwrap().unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!((snap["t"].as_str(), snap["tasks"][0]["id"].as_str()), (Some("snapshot"), Some("t1")));
    st.tasks.remove("t1");
    node.web().advance(hub::View { store: Arc::new(st), leader: None });
    let next: serde_json::Value = serde_json::from_slice(&body.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(next["gone_tasks"], serde_json::json!(["t1"]));
    node.web().clear(generation);
    assert_eq!(&body.next().await.unwrap().unwrap()[..], hub::RESET);
    assert!(body.next().await.is_none(), "the stream ends after a reset");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_address_is_loopback_or_none() {
    assert_eq!("none".parse::<WebAddr>().unwrap(), WebAddr::Off);
    assert_eq!("[::1]:80".parse::<WebAddr>().unwrap(), WebAddr::At("[::1]:80".parse().unwrap()));
    let e = "0.0.0.0:2378".parse::<WebAddr>().unwrap_err();
    assert!(e.to_string().contains("without TLS"), "{e}");
    assert!("localhost".parse::<WebAddr>().is_err());
    assert!(matches!(bind(WebAddr::Off), Ok(None)));
}

#[tokio::test]
async fn the_api_listeners_serve_the_page_too_behind_their_guard() {
    let (node, dir) = node();
    let api = crate::api::router(node.clone());
    let tls = ApiTransport::Tls { names: Arc::new(vec!["manager1.example".into()]) };
    let mut req = get("/ui/", "manager1.example:2376");
    req.extensions_mut().insert(tls.clone());
    let r = api.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let mut req = get("/ui/watch", "manager1.example:2376");
    req.extensions_mut().insert(tls);
    req.headers_mut().insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
    assert_eq!(api.oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN, "another site's page");
    std::fs::remove_dir_all(dir).ok();
}

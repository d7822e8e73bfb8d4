//! Tests of the `network` commands: the flag-to-body logic on its own, and each command's requests and output
//! against the fake daemon.

use super::*;
use crate::client::fake_daemon::{run_cli, FakeDaemon};
use crate::client::ClientCommand;
use clap::Parser;

fn ok(v: Value) -> (u16, String) {
    (200, v.to_string())
}

fn not_found(what: &str) -> (u16, String) {
    (404, json!({"message": format!("{what} not found")}).to_string())
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: ClientCommand,
}

fn parse(args: &[&str]) -> ClientCommand {
    Cli::try_parse_from(std::iter::once("skep").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"))
        .cmd
}

fn create_args(args: &[&str]) -> CreateArgs {
    let mut all = vec!["network", "create"];
    all.extend_from_slice(args);
    match parse(&all) {
        ClientCommand::Network(NetworkCmd::Create(a)) => *a,
        _ => unreachable!(),
    }
}

fn body(args: &[&str]) -> Result<String> {
    Ok(serde_json::to_string(&create_body(&create_args(args))?)?)
}

/// A network as the daemon shows it (the Engine API's `Network` object), in the daemon's key order.
fn network_json(id: &str, name: &str, ingress: bool) -> Value {
    json!({
        "Name": name, "Id": id, "Created": "2027-01-15T07:00:00.5Z", "Scope": "swarm", "Driver": "overlay",
        "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]},
        "Internal": false, "Attachable": false, "Ingress": ingress, "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": {}, "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097"}, "Labels": {},
    })
}

#[test]
fn create_body_is_dockers_byte_for_byte() {
    assert_eq!(
        body(&["net"]).unwrap(),
        r#"{"Driver":"overlay","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"net"}"#
    );
    assert_eq!(
        body(&[
            "-d", "overlay", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.1", "--ip-range", "10.20.0.128/25",
            "--attachable", "--internal", "--scope", "swarm", "--label", "a=b", "--label", "flag", "-o",
            "com.docker.network.driver.mtu=1400", "--ipv6=false", "net",
        ])
        .unwrap(),
        r#"{"Driver":"overlay","Scope":"swarm","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.20.0.0/24","IPRange":"10.20.0.128/25","Gateway":"10.20.0.1"}]},"Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.driver.mtu":"1400"},"Labels":{"a":"b","flag":""},"Name":"net"}"#
    );
    // several subnets, comma-separated or repeated; each gateway goes to the subnet that holds it
    let b: Value = serde_json::from_str(
        &body(&["--subnet", "10.1.0.0/24,10.2.0.0/24", "--gateway", "10.2.0.1", "--gateway", "10.1.0.1", "--ingress",
                "--ipv4", "ingress"])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        b["IPAM"]["Config"],
        json!([{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"}, {"Subnet": "10.2.0.0/24", "Gateway": "10.2.0.1"}])
    );
    assert_eq!((b["Ingress"].clone(), b["EnableIPv4"].clone()), (json!(true), json!(true)));
}

#[test]
fn create_refuses_what_docker_refuses_before_sending() {
    let err = |args: &[&str]| body(args).unwrap_err().to_string();
    assert_eq!(
        err(&["--gateway", "10.0.0.1", "n"]),
        "every ip-range or gateway must have a corresponding subnet"
    );
    assert_eq!(
        err(&["--subnet", "10.0.0.0/16", "--subnet", "10.0.1.0/24", "n"]),
        "multiple overlapping subnet configuration is not supported"
    );
    assert_eq!(err(&["--subnet", "10.0.0.0/24", "--gateway", "10.9.0.1", "n"]), "no matching subnet for gateway 10.9.0.1");
    assert_eq!(err(&["--subnet", "10.0.0.0/24", "--gateway", "nonsense", "n"]), "no matching subnet for gateway nonsense");
    assert_eq!(
        err(&["--subnet", "10.0.0.0/24", "--ip-range", "10.1.0.0/25", "n"]),
        "no matching subnet for range 10.1.0.0/25"
    );
    assert_eq!(
        err(&["--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "n"]),
        "every ip-range or gateway must have a corresponding subnet"
    );
    assert_eq!(
        err(&["--subnet", "10.0.0.0/24,10.1.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "n"]),
        "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)"
    );
    // as docker does, a subnet is only parsed when there is something to match it with (else the daemon judges it)
    assert!(body(&["--subnet", "10.0.0.0", "n"]).is_ok());
    assert_eq!(
        err(&["--subnet", "10.1.0.0/24", "--subnet", "10.0.0.0", "n"]),
        "invalid subnet: invalid CIDR address: 10.0.0.0"
    );
    assert_eq!(
        err(&["--subnet", "10.0.0.0/33", "--gateway", "10.0.0.1", "n"]),
        "invalid subnet: invalid CIDR address: 10.0.0.0/33"
    );
    // clap-level refusals
    let clap_err = |args: &[&str]| {
        let mut all = vec!["skep", "network", "create"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(clap_err(&["--label", "=x", "n"]).contains("invalid label '=x': empty name"));
    assert!(clap_err(&["--label", "a b=x", "n"]).contains("label 'a b' contains whitespaces"));
    assert!(!clap_err(&[]).is_empty(), "the name is required");
    assert!(!clap_err(&["a", "b"]).is_empty(), "one name only");
}

#[tokio::test]
async fn create_posts_and_prints_the_id() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("POST", "/networks/create") => {
            (201, json!({"Id": "81lh8xrlake2cf1h204ypu658", "Warning": ""}).to_string())
        }
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["network", "create", "--attachable", "--subnet", "10.20.0.0/24", "net"]).await;
    assert_eq!((out.as_str(), err), ("81lh8xrlake2cf1h204ypu658\n", None));
    assert_eq!(d.requests(), ["POST /networks/create"]);
    assert_eq!(
        d.bodies()[0],
        r#"{"Driver":"overlay","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.20.0.0/24"}]},"Internal":false,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"net"}"#
    );

    // a refused create prints the daemon's message; a bad flag sends nothing
    let d = FakeDaemon::start(|_, _, _| (409, json!({"message": "network with name net already exists"}).to_string()));
    let (out, err) = run_cli(&d, &["network", "create", "net"]).await;
    assert_eq!(out, "");
    assert_eq!(err.as_deref(), Some("Error response from daemon: network with name net already exists"));
    let (_, err) = run_cli(&d, &["network", "create", "--gateway", "10.0.0.1", "net"]).await;
    assert_eq!(err.as_deref(), Some("every ip-range or gateway must have a corresponding subnet"));
    assert_eq!(d.requests().len(), 1);
}

#[tokio::test]
async fn ls_sorts_by_name_truncates_ids_and_sends_filters() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", p) if p.starts_with("/networks") => {
            let mut local = network_json("3f8f0c1b2a4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f", "bridge", false);
            local["Scope"] = json!("local");
            local["Driver"] = json!("bridge");
            let mut front = network_json("81lh8xrlake2cf1h204ypu658", "front-10", false);
            front["Labels"] = json!({"com.docker.stack.namespace": "st", "a": "1"});
            ok(json!([
                front,
                network_json("a2lh8xrlake2cf1h204ypu658", "front-2", false),
                network_json("zw2b5cx0ldq2pw3ns0wnxy0ai", "ingress", true),
                local,
            ]))
        }
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["network", "ls"]).await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "NETWORK ID     NAME       DRIVER    SCOPE\n\
         3f8f0c1b2a4d   bridge     bridge    local\n\
         a2lh8xrlake2   front-2    overlay   swarm\n\
         81lh8xrlake2   front-10   overlay   swarm\n\
         zw2b5cx0ldq2   ingress    overlay   swarm\n"
    );
    let (out, _) = run_cli(&d, &["network", "ls", "-q", "--no-trunc", "-f", "driver=overlay", "-f", "name=front"]).await;
    assert_eq!(
        out,
        "3f8f0c1b2a4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f\na2lh8xrlake2cf1h204ypu658\n\
         81lh8xrlake2cf1h204ypu658\nzw2b5cx0ldq2pw3ns0wnxy0ai\n"
    );
    let (out, _) = run_cli(&d, &["network", "ls", "--format", "json"]).await;
    assert_eq!(
        out.lines().nth(2).unwrap(),
        r#"{"CreatedAt":"2027-01-15 07:00:00.5 +0000 UTC","Driver":"overlay","ID":"81lh8xrlake2","IPv4":"true","IPv6":"false","Internal":"false","Labels":"a=1,com.docker.stack.namespace=st","Name":"front-10","Scope":"swarm"}"#
    );
    let (out, _) = run_cli(&d, &["network", "ls", "--format", "table {{.Name}}\t{{.Internal}}"]).await;
    assert_eq!(out.lines().next().unwrap(), "NAME       INTERNAL");
    let (out, _) = run_cli(&d, &["network", "ls", "-q", "--format", "raw"]).await;
    assert_eq!(out.lines().next().unwrap(), "network_id: 3f8f0c1b2a4d");
    assert_eq!(
        d.requests(),
        [
            "GET /networks",
            // {"driver":{"overlay":true},"name":{"front":true}}
            "GET /networks?filters=%7B%22driver%22%3A%7B%22overlay%22%3Atrue%7D%2C%22name%22%3A%7B%22front%22%3Atrue%7D%7D",
            "GET /networks",
            "GET /networks",
            "GET /networks",
        ]
    );
}

#[tokio::test]
async fn inspect_prints_the_daemons_json_then_the_errors() {
    // the daemon's text, in its own key order (not alphabetical)
    let raw = concat!(
        r#"{"Name":"net","Id":"81lh8xrlake2cf1h204ypu658","Scope":"swarm","Driver":"overlay","#,
        r#""IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"10.0.1.0/24","Gateway":"10.0.1.1"}]},"#,
        r#""Ingress":false,"Containers":{},"Labels":{}}"#,
        "\n"
    );
    let raw2 = raw.to_string();
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("GET", "/networks/net") | ("GET", "/networks/net?verbose=true") => (200, raw2.clone()),
        ("GET", "/networks/ghost") => not_found("network ghost"),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["network", "inspect", "net", "ghost"]).await;
    let want = r#"[
    {
        "Name": "net",
        "Id": "81lh8xrlake2cf1h204ypu658",
        "Scope": "swarm",
        "Driver": "overlay",
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [
                {
                    "Subnet": "10.0.1.0/24",
                    "Gateway": "10.0.1.1"
                }
            ]
        },
        "Ingress": false,
        "Containers": {},
        "Labels": {}
    }
]
"#;
    assert_eq!(out, want);
    assert_eq!(err.as_deref(), Some("Error response from daemon: network ghost not found"));

    let (out, err) = run_cli(&d, &["network", "inspect", "-f", "json", "-v", "net"]).await;
    assert_eq!(err, None);
    assert_eq!(out, raw);
    let (out, _) = run_cli(&d, &["network", "inspect", "--format", "{{.Name}} {{.IPAM.Driver}} {{.Ingress}}", "net", "net"]).await;
    assert_eq!(out, "net default false\nnet default false\n");
    let (out, err) = run_cli(&d, &["network", "inspect", "ghost"]).await;
    assert_eq!(out, "[]\n");
    assert!(err.is_some());
    assert_eq!(
        d.requests(),
        [
            "GET /networks/net",
            "GET /networks/ghost",
            "GET /networks/net?verbose=true",
            "GET /networks/net",
            "GET /networks/net",
            "GET /networks/ghost"
        ]
    );
}

fn rm_daemon() -> FakeDaemon {
    FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/networks/net") => ok(network_json("81lh8xrlake2cf1h204ypu658", "net", false)),
        ("GET", "/networks/ingress") => ok(network_json("zw2b5cx0ldq2pw3ns0wnxy0ai", "ingress", true)),
        ("GET", "/networks/used") => ok(network_json("u1lh8xrlake2cf1h204ypu658", "used", false)),
        ("DELETE", "/networks/net") | ("DELETE", "/networks/ingress") => (204, String::new()),
        ("DELETE", "/networks/used") => (
            403,
            json!({"message": "rpc error: code = FailedPrecondition desc = network used is in use by service web"})
                .to_string(),
        ),
        (_, "/networks/ghost") => not_found("network ghost"),
        _ => not_found("route"),
    })
}

async fn rm_with(d: &FakeDaemon, args: &[&str], answer: &str) -> (String, Option<String>) {
    let mut all = vec!["network", "rm"];
    all.extend_from_slice(args);
    let ClientCommand::Network(NetworkCmd::Rm(a)) = parse(&all) else {
        unreachable!()
    };
    let mut out = Vec::new();
    let r = rm(&d.client(), a, &mut answer.as_bytes(), &mut out).await;
    (String::from_utf8(out).unwrap(), r.err().map(|e| error_text(&e)))
}

#[tokio::test]
async fn rm_looks_each_network_up_then_deletes_it() {
    let d = rm_daemon();
    let (out, err) = run_cli(&d, &["network", "rm", "net", "ghost", "used"]).await;
    assert_eq!(out, "net\n");
    assert_eq!(
        err.as_deref(),
        Some(
            "Error response from daemon: network ghost not found\n\
             Error response from daemon: rpc error: code = FailedPrecondition desc = network used is in use by service web"
        )
    );
    assert_eq!(
        d.requests(),
        [
            "GET /networks/net",
            "DELETE /networks/net",
            "GET /networks/ghost",
            "DELETE /networks/ghost",
            "GET /networks/used",
            "DELETE /networks/used",
        ]
    );
    // --force: a missing network is no error (other failures still are)
    let (out, err) = run_cli(&d, &["network", "rm", "-f", "ghost", "net"]).await;
    assert_eq!((out.as_str(), err), ("net\n", None));
    let (_, err) = run_cli(&d, &["network", "remove", "--force", "used"]).await;
    assert!(err.unwrap().contains("is in use"));
}

#[tokio::test]
async fn rm_of_the_ingress_network_asks_first() {
    let prompt = format!("{INGRESS_WARNING} [y/N] ");
    assert!(prompt.ends_with("impaired.\nAre you sure you want to continue? [y/N] "));
    let d = rm_daemon();
    // no (or no answer at all): skipped, not an error, nothing deleted
    for answer in ["n\n", "", "yes\n"] {
        let (out, err) = rm_with(&d, &["ingress"], answer).await;
        assert_eq!((out, err), (prompt.clone(), None), "answer {answer:?}");
    }
    assert!(!d.requests().iter().any(|r| r.starts_with("DELETE")));
    // yes
    let (out, err) = rm_with(&d, &["ingress", "net"], " Y \n").await;
    assert_eq!((out, err), (format!("{prompt}ingress\nnet\n"), None));
    // --force: no question
    let (out, err) = rm_with(&d, &["-f", "ingress"], "").await;
    assert_eq!((out.as_str(), err), ("ingress\n", None));
    let deletes: Vec<String> = d.requests().into_iter().filter(|r| r.starts_with("DELETE")).collect();
    assert_eq!(deletes, ["DELETE /networks/ingress", "DELETE /networks/net", "DELETE /networks/ingress"]);
}

#[test]
fn network_clap_definitions() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
    assert!(Cli::try_parse_from(["skep", "network", "list"]).is_ok());
    assert!(Cli::try_parse_from(["skep", "network", "rm"]).is_err());
    assert!(Cli::try_parse_from(["skep", "network", "inspect"]).is_err());
    let a = create_args(&["n"]);
    assert_eq!((a.driver.as_str(), a.ipam_driver.as_str(), a.scope.as_str()), ("overlay", "default", ""));
}

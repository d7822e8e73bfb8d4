use std::net::Ipv4Addr;

use super::*;

const FRONT: &str = "net-front";
const BACK: &str = "net-back";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn table() -> Records {
    RecordsBuilder::new()
        .service(FRONT, "web", &["www", "Frontend"], &[ip(2)])
        .tasks(FRONT, "web", &[ip(3), ip(4), ip(5)])
        .task(FRONT, "web.1.abcdef", ip(3))
        .service(BACK, "db", &[], &[ip(20)])
        .service(BACK, "web", &[], &[ip(30)])
        .build()
}

#[test]
fn service_name_and_aliases_answer_the_vip() {
    let r = table();
    assert_eq!(r.lookup(&[FRONT], "web"), Some(&[ip(2)][..]));
    assert_eq!(r.lookup(&[FRONT], "www"), Some(&[ip(2)][..]));
    assert_eq!(r.lookup(&[FRONT], "frontend"), Some(&[ip(2)][..]));
}

#[test]
fn tasks_name_answers_every_task_in_order() {
    let r = table();
    assert_eq!(r.lookup(&[FRONT], "tasks.web"), Some(&[ip(3), ip(4), ip(5)][..]));
    assert_eq!(r.lookup(&[FRONT], "web.1.abcdef"), Some(&[ip(3)][..]));
    assert_eq!(r.lookup(&[FRONT], "tasks.www"), None, "only the names the builder was given");
}

#[test]
fn lookups_ignore_case_and_a_trailing_dot() {
    let r = table();
    for name in ["WEB", "Web.", "web.", "TASKS.Web.", "FrontEnd."] {
        assert!(r.lookup(&[FRONT], name).is_some(), "{name}");
    }
    assert_eq!(r.lookup(&[FRONT], "web.."), None);
    assert_eq!(r.lookup(&[FRONT], "."), None);
    assert_eq!(r.lookup(&[FRONT], ""), None);
}

#[test]
fn names_are_scoped_to_the_asking_tasks_networks() {
    let r = table();
    assert_eq!(r.lookup(&[FRONT], "db"), None, "db is only on the back network");
    assert_eq!(r.lookup(&[BACK], "db"), Some(&[ip(20)][..]));
    assert_eq!(r.lookup(&["other"], "web"), None);
    assert_eq!(r.lookup::<&str>(&[], "web"), None);
    // a name on two networks: the first network of the scope answers
    assert_eq!(r.lookup(&[BACK, FRONT], "web"), Some(&[ip(30)][..]));
    assert_eq!(r.lookup(&[FRONT, BACK], "web"), Some(&[ip(2)][..]));
    // scope given as owned strings, as the server holds it
    let scope = vec![String::from("unknown"), String::from(BACK)];
    assert_eq!(r.lookup(&scope, "db"), Some(&[ip(20)][..]));
}

#[test]
fn labels_lookup_matches_string_lookup() {
    let r = table();
    let labels: [&[u8]; 2] = [b"TASKS", b"web"];
    assert_eq!(r.lookup_labels(&[FRONT], labels), Some(&[ip(3), ip(4), ip(5)][..]));
    let none: [&[u8]; 0] = [];
    assert_eq!(r.lookup_labels(&[FRONT], none), None);
    let empty_label: [&[u8]; 2] = [b"", b"web"];
    assert_eq!(r.lookup_labels(&[FRONT], empty_label), None);
    // a label holding a dot is one label, not two: no confusion with "tasks.web"
    let dotted: [&[u8]; 1] = [b"tasks.web"];
    assert_eq!(r.lookup_labels(&[FRONT], dotted), None);
}

#[test]
fn same_name_twice_merges_addresses_without_duplicates() {
    let r = RecordsBuilder::new()
        .service("n", "svc", &["alias"], &[ip(1), ip(1)])
        .service("n", "svc", &[], &[ip(2), ip(1)])
        .build();
    assert_eq!(r.lookup(&["n"], "svc"), Some(&[ip(1), ip(2)][..]));
    assert_eq!(r.lookup(&["n"], "alias"), Some(&[ip(1)][..]));
    assert_eq!(r.len(), 2);
}

#[test]
fn a_name_without_addresses_is_still_ours() {
    let r = RecordsBuilder::new().tasks("n", "idle", &[]).build();
    assert_eq!(r.lookup(&["n"], "tasks.idle"), Some(&[][..]));
}

#[test]
fn invalid_names_are_left_out() {
    let long_label = "a".repeat(64);
    let long_name = ["abcdefghi"; 26].join(".");
    let r = RecordsBuilder::new()
        .service("n", &long_label, &[""], &[ip(1)])
        .service("n", &long_name, &["a..b"], &[ip(1)])
        .service("n", &"b".repeat(63), &[], &[ip(1)])
        .build();
    assert_eq!(r.len(), 1);
    assert!(r.lookup(&["n"], &"B".repeat(63)).is_some());
    assert!(Records::empty().is_empty());
}

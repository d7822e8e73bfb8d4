use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Outer {
    name: String,
    labels: BTreeMap<String, String>,
    inner: Inner,
    maybe: Option<Inner>,
    list: Vec<String>,
    count: u64,
    ratio: f32,
    flag: bool,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase", rename = "InnerGo")]
struct Inner {
    replicas: Option<u64>,
    port: u32,
    delay: i64,
    /// Two fields that fold to the same name: an exact key goes to its own field, a folded one to the first.
    #[serde(rename = "ID")]
    id_upper: String,
    #[serde(rename = "Id")]
    id_mixed: String,
}

impl Default for Inner {
    fn default() -> Self {
        Inner { replicas: None, port: 7, delay: 0, id_upper: String::new(), id_mixed: String::new() }
    }
}

fn decode<T: DeserializeOwned>(s: &str) -> Result<T, DecodeError> {
    from_slice(s.as_bytes())
}

#[test]
fn keys_match_fields_case_insensitively_at_every_level() {
    let o: Outer = decode(r#"{"name":"a","INNER":{"replicas":5,"PoRt":80},"maybe":{"rEpLiCaS":2},"list":["x"],"count":3}"#).unwrap();
    assert_eq!(o.name, "a");
    assert_eq!(o.inner.replicas, Some(5));
    assert_eq!(o.inner.port, 80);
    assert_eq!(o.maybe.unwrap().replicas, Some(2));
    assert_eq!(o.list, ["x"]);
    assert_eq!(o.count, 3);
}

#[test]
fn an_exact_match_wins_over_a_folded_one() {
    let i: Inner = decode(r#"{"Id":"mixed","ID":"upper"}"#).unwrap();
    assert_eq!((i.id_upper.as_str(), i.id_mixed.as_str()), ("upper", "mixed"));
    // a key matching neither exactly goes to the first field it folds to, as Go does
    let i: Inner = decode(r#"{"id":"x"}"#).unwrap();
    assert_eq!((i.id_upper.as_str(), i.id_mixed.as_str()), ("x", ""));
}

#[test]
fn folding_is_unicode_simple_folding_as_in_go() {
    assert!(go_fold_eq("Replicas", "replica\u{017f}")); // long s
    assert!(go_fold_eq("TaskTemplate", "Tas\u{212a}template")); // Kelvin sign
    assert!(go_fold_eq("Name", "NAME"));
    assert!(!go_fold_eq("Name", "Nam"));
    assert!(!go_fold_eq("ID", "\u{0131}D")); // dotless i folds only to itself in Go
    assert!(go_fold_eq("stra\u{00df}e", "STRA\u{1e9e}E"));
    let i: Inner = decode("{\"Replica\u{017f}\":4}").unwrap();
    assert_eq!(i.replicas, Some(4));
}

#[test]
fn map_keys_are_data_and_keep_their_case() {
    let o: Outer = decode(r#"{"Labels":{"Name":"v","name":"w","MiXed":"x"}}"#).unwrap();
    assert_eq!(o.labels.len(), 3);
    assert_eq!(o.labels["MiXed"], "x");
}

#[test]
fn null_is_the_zero_value() {
    // a null field is as if absent: the struct's default stays (Inner::default has Port 7)
    let o: Outer = decode(r#"{"Name":null,"Inner":{"Port":null,"Replicas":null},"Maybe":null,"List":null,"Count":null,"Ratio":null,"Flag":null,"Labels":null}"#).unwrap();
    assert_eq!(o, Outer::default());
    assert_eq!(o.inner.port, 7);
    // a null struct is an empty one
    let o: Outer = decode(r#"{"Inner":null}"#).unwrap();
    assert_eq!(o.inner, Inner::default());
    // inside lists and map values, null is the element's zero value
    let o: Outer = decode(r#"{"List":["a",null],"Labels":{"k":null}}"#).unwrap();
    assert_eq!(o.list, ["a", ""]);
    assert_eq!(o.labels["k"], "");
    let v: Vec<u64> = decode("[1,null]").unwrap();
    assert_eq!(v, [1, 0]);
}

#[test]
fn unknown_fields_are_ignored() {
    let o: Outer = decode(r#"{"Name":"a","Bogus":{"deep":[1,2,{"x":null}]},"Inner":{"Nope":1,"Port":9}}"#).unwrap();
    assert_eq!(o.name, "a");
    assert_eq!(o.inner.port, 9);
}

#[test]
fn the_last_of_duplicate_keys_wins() {
    let i: Inner = decode(r#"{"Replicas":2,"replicas":3}"#).unwrap();
    assert_eq!(i.replicas, Some(3));
    let i: Inner = decode(r#"{"replicas":3,"Replicas":2}"#).unwrap();
    assert_eq!(i.replicas, Some(2));
    // a later null clears an earlier value
    let i: Inner = decode(r#"{"Replicas":2,"REPLICAS":null}"#).unwrap();
    assert_eq!(i.replicas, None);
}

#[test]
fn type_errors_read_as_gos() {
    let e = decode::<Outer>(r#"{"Inner":{"Replicas":-1}}"#).unwrap_err();
    assert_eq!(e.to_string(), "json: cannot unmarshal number -1 into Go struct field InnerGo.Inner.Replicas of type uint64");
    let e = decode::<Outer>(r#"{"inner":{"replicas":"3"}}"#).unwrap_err();
    assert_eq!(e.to_string(), "json: cannot unmarshal string into Go struct field InnerGo.Inner.Replicas of type uint64");
    let e = decode::<Outer>(r#"{"Inner":{"Port":4294967296}}"#).unwrap_err();
    assert!(e.to_string().contains("of type uint32"), "{e}");
    let e = decode::<Outer>(r#"{"Count":1.5}"#).unwrap_err();
    assert_eq!(e.to_string(), "json: cannot unmarshal number 1.5 into Go struct field Outer.Count of type uint64");
    let e = decode::<Outer>(r#"{"Flag":"yes"}"#).unwrap_err();
    assert!(e.to_string().contains("of type bool"), "{e}");
    let e = decode::<Outer>(r#"{"List":"x"}"#).unwrap_err();
    assert!(e.to_string().contains("Outer.List"), "{e}");
    let e = decode::<Outer>("[1,2]").unwrap_err();
    assert_eq!(e.to_string(), "json: cannot unmarshal array into Go value of type swarm.Outer");
}

#[test]
fn bad_bodies_are_refused_clearly() {
    assert_eq!(decode::<Outer>("").unwrap_err(), DecodeError::Empty);
    assert_eq!(decode::<Outer>("  \n").unwrap_err().to_string(), "got EOF while reading request body");
    assert_eq!(decode::<Outer>(r#"{"Name":"#).unwrap_err().to_string(), "unexpected EOF");
    assert!(matches!(decode::<Outer>("{nope}").unwrap_err(), DecodeError::Syntax(_)));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(decode::<serde_json::Value>(&deep).unwrap_err(), DecodeError::TooDeep);
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(decode::<serde_json::Value>(&ok).is_ok());
    // also where the nesting is in a field that would be ignored
    let ignored = |levels: usize| format!(r#"{{"Name":"x","Zz":{}{}}}"#, "[".repeat(levels - 1), "]".repeat(levels - 1));
    assert_eq!(decode::<Outer>(&ignored(MAX_DEPTH + 1)).unwrap_err(), DecodeError::TooDeep);
    assert!(decode::<Outer>(&ignored(MAX_DEPTH)).is_ok());
    // brackets inside strings, escaped quotes included, do not count
    assert_eq!(json_depth(br#"{"a":"[[[\"[[[","b":[1]}"#), 2);
    // serde_json's own recursion limit stops anything deeper before it reaches the adapter
    let huge = "[".repeat(100_000);
    assert!(decode::<serde_json::Value>(&huge).is_err());
}

#[test]
fn untyped_values_keep_what_was_sent() {
    let v: serde_json::Value = decode(r#"{"b":1,"a":[true,null,"x",-2,1.5]}"#).unwrap();
    assert_eq!(v, serde_json::json!({"b":1,"a":[true,null,"x",-2,1.5]}));
}

#[test]
fn enums_match_their_names_exactly() {
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Condition {
        Any,
        OnFailure,
    }
    assert_eq!(decode::<Condition>(r#""on-failure""#).unwrap(), Condition::OnFailure);
    assert_eq!(decode::<Condition>(r#""any""#).unwrap(), Condition::Any);
    assert!(decode::<Condition>(r#""ANY""#).is_err());
}

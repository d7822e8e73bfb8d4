//! Swarm templates in a task's spec: `--hostname "{{.Node.Hostname}}-{{.Task.Slot}}"`, `--env SVC={{.Service.Name}}`,
//! `--mount source=logs-{{.Task.Slot}},…`, expanded on the node before the task runs, as swarmkit's agent does
//! (swarmkit `template/expand.go`: `Env` values, `Hostname`, mount `Source` and `Target`, volume labels and driver
//! options).
//!
//! The language is the part of Go's `text/template` that these fields use: text with `{{ … }}` actions (`{{-`/`-}}`
//! trim the whitespace beside them, `{{/* … */}}` is a comment), an action being a pipeline of commands separated by
//! `|`, a command being a field (`.Task.Slot`), a string literal, or a function (`index`, `lower`, `upper`, `title`)
//! applied to its arguments and, in a pipeline, to the value before it. Anything else is a clear error naming the
//! action, never left as text. Output is bounded ([`MAX_OUTPUT`]).

use std::collections::BTreeMap;

/// Longest expansion of one field.
pub const MAX_OUTPUT: usize = 64 << 10;

/// What a template can refer to (swarmkit's `template.Context`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// `.Service.ID`.
    pub service_id: String,
    /// `.Service.Name`.
    pub service_name: String,
    /// `.Service.Labels`; `None` when the node was not told them.
    pub service_labels: Option<BTreeMap<String, String>>,
    /// `.Node.ID`.
    pub node_id: String,
    /// `.Node.Hostname`.
    pub node_hostname: String,
    /// `.Node.Platform.Architecture` (Go's spelling: `amd64`, `arm64`).
    pub node_architecture: String,
    /// `.Node.Platform.OS` (`linux`).
    pub node_os: String,
    /// `.Task.ID`.
    pub task_id: String,
    /// `.Task.Name` (`<service>.<slot>.<task ID>`).
    pub task_name: String,
    /// `.Task.Slot`: the slot, or the node ID for a global service's task (as swarmkit does).
    pub task_slot: String,
}

/// A template that cannot be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Map(BTreeMap<String, String>),
}

impl Context {
    /// The value of a field path such as `["Task", "Slot"]`.
    fn field(&self, path: &[&str]) -> Result<Value, TemplateError> {
        let s = |v: &String| Ok(Value::Str(v.clone()));
        match path {
            ["Service", "ID"] => s(&self.service_id),
            ["Service", "Name"] => s(&self.service_name),
            ["Service", "Labels"] => match &self.service_labels {
                Some(l) => Ok(Value::Map(l.clone())),
                None => err("{{.Service.Labels}} is not available on the node (skep does not send a service's labels \
                             with its tasks)"),
            },
            ["Node", "ID"] => s(&self.node_id),
            ["Node", "Hostname"] => s(&self.node_hostname),
            ["Node", "Platform", "Architecture"] => s(&self.node_architecture),
            ["Node", "Platform", "OS"] => s(&self.node_os),
            ["Task", "ID"] => s(&self.task_id),
            ["Task", "Name"] => s(&self.task_name),
            ["Task", "Slot"] => s(&self.task_slot),
            _ => err(format!("can't evaluate field .{}", path.join("."))),
        }
    }

    /// Expands `text`; text without `{{` comes back unchanged.
    pub fn expand(&self, text: &str) -> Result<String, TemplateError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut literal = &rest[..open];
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| TemplateError(format!("unclosed action in {text:?}")))?;
            let mut action = &after[..close];
            rest = &after[close + 2..];
            if let Some(a) = action.strip_prefix('-').filter(|a| a.starts_with(char::is_whitespace)) {
                literal = literal.trim_end();
                action = a;
            }
            if let Some(a) = action.strip_suffix('-').filter(|a| a.ends_with(char::is_whitespace)) {
                rest = rest.trim_start();
                action = a;
            }
            out.push_str(literal);
            let action = action.trim();
            if action.starts_with("/*") && action.ends_with("*/") {
                continue;
            }
            match self.pipeline(action)? {
                Value::Str(s) => out.push_str(&s),
                Value::Map(m) => out.push_str(&format!("map{m:?}")),
            }
            if out.len() > MAX_OUTPUT {
                return err(format!("the expansion of {text:?} is longer than {MAX_OUTPUT} bytes"));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn pipeline(&self, action: &str) -> Result<Value, TemplateError> {
        if action.is_empty() {
            return err("missing value for command in {{}}");
        }
        let mut value: Option<Value> = None;
        for command in split_outside_quotes(action, '|') {
            let words = words(command.trim())?;
            let Some((head, args)) = words.split_first() else {
                return err(format!("missing command in {{{{{action}}}}}"));
            };
            let mut args: Vec<Value> = args.iter().map(|w| self.operand(w)).collect::<Result<_, _>>()?;
            value = Some(match head {
                Word::Function(name) => {
                    args.extend(value.take());
                    call(name, args)?
                }
                operand if args.is_empty() && value.is_none() => self.operand(operand)?,
                _ => return err(format!("can't give arguments to a non-function in {{{{{action}}}}}")),
            });
        }
        value.ok_or_else(|| TemplateError(format!("empty pipeline {{{{{action}}}}}")))
    }

    fn operand(&self, w: &Word) -> Result<Value, TemplateError> {
        match w {
            Word::Field(path) => self.field(&path.iter().map(String::as_str).collect::<Vec<_>>()),
            Word::Literal(s) => Ok(Value::Str(s.clone())),
            Word::Function(name) => err(format!("function {name:?} used as an argument")),
        }
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let one = |args: Vec<Value>| -> Result<String, TemplateError> {
        match <[Value; 1]>::try_from(args) {
            Ok([Value::Str(s)]) => Ok(s),
            _ => err(format!("{name} wants one string")),
        }
    };
    Ok(Value::Str(match name {
        "lower" => one(args)?.to_lowercase(),
        "upper" => one(args)?.to_uppercase(),
        "title" => title(&one(args)?),
        "index" => match <[Value; 2]>::try_from(args) {
            Ok([Value::Map(m), Value::Str(k)]) => m.get(&k).cloned().unwrap_or_default(),
            _ => return err("index wants a map and a key"),
        },
        _ => return err(format!("function {name:?} not defined")),
    }))
}

/// Go's `strings.Title`: the first letter of each word upper case.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Word {
    Field(Vec<String>),
    Literal(String),
    Function(String),
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn words(command: &str) -> Result<Vec<Word>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = command.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut lit = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => lit.push('\n'),
                        Some('t') => lit.push('\t'),
                        Some(c @ ('"' | '\\')) => lit.push(c),
                        other => return err(format!("unsupported escape \\{} in {command:?}", other.unwrap_or(' '))),
                    },
                    c => lit.push(c),
                }
            }
            if !closed {
                return err(format!("unterminated quoted string in {command:?}"));
            }
            out.push(Word::Literal(lit));
            continue;
        }
        let mut end = command.len();
        while let Some(&(j, c)) = chars.peek() {
            if c.is_whitespace() {
                end = j;
                break;
            }
            chars.next();
        }
        let word = &command[i..end];
        if let Some(path) = word.strip_prefix('.') {
            let fields: Vec<String> = path.split('.').map(str::to_string).collect();
            if fields.iter().any(|f| f.is_empty() || !f.chars().all(|c| c.is_alphanumeric() || c == '_')) {
                return err(format!("bad field {word:?}"));
            }
            out.push(Word::Field(fields));
        } else if word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && word.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            out.push(Word::Function(word.to_string()));
        } else {
            return err(format!("unsupported syntax {word:?} in {{{{{command}}}}}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            service_id: "svc1".into(),
            service_name: "Web".into(),
            service_labels: Some([("tier".to_string(), "front".to_string())].into()),
            node_id: "node1".into(),
            node_hostname: "host-a".into(),
            node_architecture: "amd64".into(),
            node_os: "linux".into(),
            task_id: "task1".into(),
            task_name: "Web.2.task1".into(),
            task_slot: "2".into(),
        }
    }

    #[test]
    fn fields_functions_and_pipelines_expand_like_go() {
        let c = ctx();
        assert_eq!(c.expand("plain").unwrap(), "plain");
        assert_eq!(c.expand("{{.Node.Hostname}}-{{.Task.Slot}}").unwrap(), "host-a-2");
        assert_eq!(c.expand("{{ .Service.Name | lower }}.{{upper .Node.Platform.OS}}").unwrap(), "web.LINUX");
        assert_eq!(c.expand(r#"{{index .Service.Labels "tier"}}{{index .Service.Labels "none"}}"#).unwrap(), "front");
        assert_eq!(c.expand("a  {{- .Task.ID -}}  b").unwrap(), "atask1b");
        assert_eq!(c.expand("{{/* note */}}x{{.Task.Name}}").unwrap(), "xWeb.2.task1");
        assert_eq!(c.expand(r#"{{"hello world" | title}}"#).unwrap(), "Hello World");
        assert_eq!(c.expand("{{.Service.ID}}/{{.Node.ID}}/{{.Node.Platform.Architecture}}").unwrap(), "svc1/node1/amd64");
    }

    #[test]
    fn what_cannot_be_expanded_is_an_error() {
        let c = ctx();
        for bad in [
            "{{.Task.Bogus}}",
            "{{.Service.Name",
            "{{}}",
            "{{printf \"%d\" 1}}",
            "{{if .Task.ID}}x{{end}}",
            "{{$x := 1}}",
            "{{\"open}}",
            "{{.Task.ID .Task.ID}}",
        ] {
            assert!(c.expand(bad).is_err(), "{bad} expanded");
        }
        let no_labels = Context { service_labels: None, ..ctx() };
        let e = no_labels.expand(r#"{{index .Service.Labels "a"}}"#).unwrap_err();
        assert!(e.to_string().contains("Service.Labels"), "{e}");
        let long = "{{.Task.Name}}".repeat(MAX_OUTPUT / 8);
        assert!(c.expand(&long).is_err(), "bounded");
    }
}

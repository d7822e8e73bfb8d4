//! Templated secrets and configs (`Templating: {"Name": "golang"}`, `docker config create --template-driver golang`):
//! the part of Go's `text/template` that Docker's documentation and swarmkit's `template` package give a payload,
//! written by hand. A payload is parsed when the object is created, so a syntax error or anything outside this
//! subset is refused then, naming what is wrong; it is rendered for each task by the dispatcher, which holds what a
//! template may refer to (the task, its service and node, the task's other secrets and configs).
//!
//! # What is supported
//! - Text outside `{{ … }}` is copied byte for byte; `{{- ` and ` -}}` trim the whitespace before and after, as in Go;
//!   `{{/* comments */}}`.
//! - Fields (swarmkit's template context): `.Service.ID`, `.Service.Name`, `.Service.Labels` (printed as Go prints a
//!   map: `map[k1:v1 k2:v2]`), `.Service.Labels.<key>` (an error when the label is missing, Go's `missingkey=error`),
//!   `.Task.ID`, `.Task.Name` (`<service>.<slot>.<task ID>`), `.Task.Slot` (the node ID for a global task),
//!   `.Node.ID`, `.Node.Hostname`, `.Node.Platform.OS`, `.Node.Platform.Architecture`.
//! - Functions: `env "NAME"` (from the task's `ContainerSpec.Env`; empty when unset), `secret "target"` and
//!   `config "target"` (the content of the task's secret or config whose `File.Name` is `target`), `join "sep" a b …`
//!   and `index .Service.Labels "key"` (empty when missing). Arguments are string literals (`"…"` with Go's common
//!   escapes, or `` `raw` ``) or the fields above.
//!
//! Everything else Go's templates have (pipelines `|`, parentheses, variables, `if`/`range`/`with`/`define`/…,
//! other functions such as `printf`, numbers) is refused at create time with the name of what is not supported.

use std::collections::BTreeMap;

/// Why a payload is not a template skep can render (refused at create time).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template: line {line}: {message}")]
pub struct TemplateError {
    /// 1-based line of the action at fault.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Why a template did not render for a task (the task is refused with it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Print(Value),
}

/// What an action prints, or an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Field(Field),
    Call(Func, Vec<Value>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    ServiceId,
    ServiceName,
    ServiceLabels,
    ServiceLabel(String),
    TaskId,
    TaskName,
    TaskSlot,
    NodeId,
    NodeHostname,
    NodeOs,
    NodeArch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Env,
    Secret,
    Config,
    Join,
    Index,
}

/// Which of the task's references a `secret` or `config` call reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `secret "target"`.
    Secret,
    /// `config "target"`.
    Config,
}

/// Reads the content of the task's secret or config whose target is the argument.
pub type LookupFn<'a> = dyn Fn(Lookup, &str) -> Result<Vec<u8>, RenderError> + 'a;

/// What a template is rendered with: the task, its service and node, and its other secrets and configs.
pub struct Context<'a> {
    /// `.Service.ID`.
    pub service_id: &'a str,
    /// `.Service.Name`.
    pub service_name: &'a str,
    /// `.Service.Labels`.
    pub service_labels: &'a BTreeMap<String, String>,
    /// `.Task.ID`.
    pub task_id: &'a str,
    /// `.Task.Name`.
    pub task_name: &'a str,
    /// `.Task.Slot`.
    pub task_slot: &'a str,
    /// `.Node.ID`.
    pub node_id: &'a str,
    /// `.Node.Hostname`.
    pub node_hostname: &'a str,
    /// `.Node.Platform.OS`.
    pub node_os: &'a str,
    /// `.Node.Platform.Architecture`.
    pub node_arch: &'a str,
    /// The task's `ContainerSpec.Env` (`env`).
    pub env: &'a [String],
    /// The content of the task's secret or config whose target is the argument (`secret`, `config`).
    pub lookup: &'a LookupFn<'a>,
}

const FIELDS: &str = ".Service.ID, .Service.Name, .Service.Labels, .Service.Labels.<key>, .Task.ID, .Task.Name, \
                      .Task.Slot, .Node.ID, .Node.Hostname, .Node.Platform.OS, .Node.Platform.Architecture";

impl Template {
    /// Parse a payload.
    pub fn parse(text: &[u8]) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut line = 1;
        let mut trim_next = false;
        while let Some(open) = find(rest, b"{{") {
            let mut before = &rest[..open];
            if trim_next {
                before = trim_start(before);
            }
            let after_open = &rest[open + 2..];
            let trim_left = after_open.len() >= 2 && after_open[0] == b'-' && after_open[1].is_ascii_whitespace();
            if trim_left {
                before = trim_end(before);
            }
            line += count_lines(&rest[..open]);
            if !before.is_empty() {
                parts.push(Part::Text(before.to_vec()));
            }
            let body_start = if trim_left { 2 } else { 0 };
            let (body, trim_right, used) = action_body(&after_open[body_start..], line)?;
            let text = std::str::from_utf8(body).map_err(|_| err(line, "an action is not valid UTF-8"))?;
            if let Some(v) = parse_action(text.trim(), line)? {
                parts.push(Part::Print(v));
            }
            line += count_lines(&after_open[..body_start + used]);
            rest = &after_open[body_start + used..];
            trim_next = trim_right;
        }
        let tail = if trim_next { trim_start(rest) } else { rest };
        if !tail.is_empty() {
            parts.push(Part::Text(tail.to_vec()));
        }
        Ok(Template { parts })
    }

    /// Render for one task.
    pub fn render(&self, ctx: &Context<'_>) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Print(v) => out.extend_from_slice(&eval(v, ctx)?),
            }
        }
        Ok(out)
    }
}

fn err(line: usize, message: impl Into<String>) -> TemplateError {
    TemplateError { line, message: message.into() }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|c| **c == b'\n').count()
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
    &b[..b.len() - n]
}

/// The body of an action starting right after `{{` (and a left trim marker): up to the closing `}}` outside string
/// literals (a comment ends at its first `*/`). Returns the body (without a right trim marker), whether it had one,
/// and the bytes used up to and including `}}`.
fn action_body(b: &[u8], line: usize) -> Result<(&[u8], bool, usize), TemplateError> {
    let lead = b.len() - trim_start(b).len();
    let end = if b[lead..].starts_with(b"/*") {
        let unclosed = || err(line, "unclosed comment");
        let after = lead + 2 + find(&b[lead + 2..], b"*/").ok_or_else(unclosed)? + 2;
        after + find(&b[after..], b"}}").ok_or_else(unclosed)?
    } else {
        let mut i = 0;
        loop {
            match b.get(i) {
                None => return Err(err(line, "unclosed action")),
                Some(b'}') if b.get(i + 1) == Some(&b'}') => break i,
                Some(q @ (b'"' | b'`')) => {
                    let raw = *q == b'`';
                    i += 1;
                    loop {
                        match b.get(i) {
                            None => return Err(err(line, "unterminated quoted string")),
                            Some(b'\n') if !raw => return Err(err(line, "unterminated quoted string")),
                            Some(b'\\') if !raw => i += 2,
                            Some(c) if c == q => break,
                            Some(_) => i += 1,
                        }
                    }
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
    };
    let body = &b[..end];
    let n = body.len();
    if n >= 2 && body[n - 1] == b'-' && body[n - 2].is_ascii_whitespace() {
        return Ok((&body[..n - 1], true, end + 2));
    }
    Ok((body, false, end + 2))
}

/// One action: `None` for a comment.
fn parse_action(text: &str, line: usize) -> Result<Option<Value>, TemplateError> {
    if let Some(c) = text.strip_prefix("/*") {
        return if c.ends_with("*/") { Ok(None) } else { Err(err(line, "comment ends before closing delimiter")) };
    }
    let tokens = tokenize(text, line)?;
    let Some((first, args)) = tokens.split_first() else {
        return Err(err(line, "missing value for command"));
    };
    match first {
        Token::Ident(name) => {
            let f = match name.as_str() {
                "env" => Func::Env,
                "secret" => Func::Secret,
                "config" => Func::Config,
                "join" => Func::Join,
                "index" => Func::Index,
                "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                    return Err(err(line, format!("{name:?} actions are not supported by skep's templates")))
                }
                other => {
                    return Err(err(
                        line,
                        format!("function {other:?} is not supported by skep's templates (env, secret, config, join, index are)"),
                    ))
                }
            };
            let args: Vec<Value> = args.iter().map(|t| operand(t, line)).collect::<Result<_, _>>()?;
            check_call(f, &args, line)?;
            Ok(Some(Value::Call(f, args)))
        }
        t => {
            let v = operand(t, line)?;
            if !args.is_empty() {
                return Err(err(line, "can't give argument to non-function"));
            }
            Ok(Some(v))
        }
    }
}

fn check_call(f: Func, args: &[Value], line: usize) -> Result<(), TemplateError> {
    let is_map = |v: &Value| matches!(v, Value::Field(Field::ServiceLabels));
    match f {
        Func::Env | Func::Secret | Func::Config => {
            let name = match f {
                Func::Env => "env",
                Func::Secret => "secret",
                _ => "config",
            };
            if args.len() != 1 {
                return Err(err(line, format!("wrong number of args for {name}: want 1 got {}", args.len())));
            }
        }
        Func::Join if args.is_empty() => return Err(err(line, "join needs a separator")),
        Func::Join => {}
        Func::Index => {
            if args.len() != 2 || !is_map(&args[0]) || is_map(&args[1]) {
                return Err(err(line, "index is supported only as index .Service.Labels \"key\""));
            }
            return Ok(());
        }
    }
    if args.iter().any(is_map) {
        return Err(err(line, "wrong type for value; expected string; got map[string]string"));
    }
    Ok(())
}

#[derive(Debug)]
enum Token {
    Ident(String),
    Field(String),
    Str(String),
}

fn tokenize(text: &str, line: usize) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let word_end = |from: usize| text[from..].find(|c: char| c.is_whitespace()).map_or(text.len(), |n| from + n);
        match c {
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    let Some((_, c)) = chars.next() else { return Err(err(line, "unterminated quoted string")) };
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some((_, e)) = chars.next() else { return Err(err(line, "unterminated quoted string")) };
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                other => return Err(err(line, format!("escape \\{other} is not supported by skep's templates"))),
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Token::Str(s));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                        None => return Err(err(line, "unterminated raw quoted string")),
                    }
                }
                out.push(Token::Str(s));
            }
            '.' => {
                let end = word_end(i);
                out.push(Token::Field(text[i..end].to_string()));
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = word_end(i);
                let word = &text[i..end];
                if !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(unsupported(word, line));
                }
                out.push(Token::Ident(word.to_string()));
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            _ => return Err(unsupported(&text[i..word_end(i)], line)),
        }
    }
    Ok(out)
}

fn unsupported(what: &str, line: usize) -> TemplateError {
    let what_is = match what.chars().next() {
        Some('|') => "pipelines",
        Some('(') | Some(')') => "parentheses",
        Some('$') => "variables",
        Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => "numbers",
        _ => "this syntax",
    };
    err(line, format!("{what_is} ({what:?}) are not supported by skep's templates"))
}

fn operand(t: &Token, line: usize) -> Result<Value, TemplateError> {
    match t {
        Token::Str(s) => Ok(Value::Str(s.clone())),
        Token::Field(f) => field(f, line).map(Value::Field),
        Token::Ident(name) => Err(err(line, format!("{name:?} can only be used as the function of an action"))),
    }
}

fn field(path: &str, line: usize) -> Result<Field, TemplateError> {
    let f = match path {
        ".Service.ID" => Field::ServiceId,
        ".Service.Name" => Field::ServiceName,
        ".Service.Labels" => Field::ServiceLabels,
        ".Task.ID" => Field::TaskId,
        ".Task.Name" => Field::TaskName,
        ".Task.Slot" => Field::TaskSlot,
        ".Node.ID" => Field::NodeId,
        ".Node.Hostname" => Field::NodeHostname,
        ".Node.Platform.OS" => Field::NodeOs,
        ".Node.Platform.Architecture" => Field::NodeArch,
        p => match p.strip_prefix(".Service.Labels.") {
            Some(k) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Field::ServiceLabel(k.to_string())
            }
            _ => return Err(err(line, format!("unknown field {p} (skep's templates know {FIELDS})"))),
        },
    };
    Ok(f)
}

fn string(v: &Value, ctx: &Context<'_>) -> Result<String, RenderError> {
    let b = eval(v, ctx)?;
    String::from_utf8(b).map_err(|_| RenderError("a secret or config used as an argument is not valid UTF-8".into()))
}

fn eval(v: &Value, ctx: &Context<'_>) -> Result<Vec<u8>, RenderError> {
    Ok(match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Field(f) => match f {
            Field::ServiceId => ctx.service_id.into(),
            Field::ServiceName => ctx.service_name.into(),
            Field::ServiceLabels => {
                let inner: Vec<String> = ctx.service_labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", inner.join(" ")).into_bytes()
            }
            Field::ServiceLabel(k) => match ctx.service_labels.get(k) {
                Some(v) => v.as_bytes().to_vec(),
                None => return Err(RenderError(format!("map has no entry for key {k:?}"))),
            },
            Field::TaskId => ctx.task_id.into(),
            Field::TaskName => ctx.task_name.into(),
            Field::TaskSlot => ctx.task_slot.into(),
            Field::NodeId => ctx.node_id.into(),
            Field::NodeHostname => ctx.node_hostname.into(),
            Field::NodeOs => ctx.node_os.into(),
            Field::NodeArch => ctx.node_arch.into(),
        },
        Value::Call(f, args) => match f {
            Func::Env => {
                let name = string(&args[0], ctx)?;
                let prefix = format!("{name}=");
                ctx.env.iter().find_map(|e| e.strip_prefix(&prefix)).unwrap_or("").as_bytes().to_vec()
            }
            Func::Secret => (ctx.lookup)(Lookup::Secret, &string(&args[0], ctx)?)?,
            Func::Config => (ctx.lookup)(Lookup::Config, &string(&args[0], ctx)?)?,
            Func::Join => {
                let parts: Vec<String> = args.iter().map(|a| string(a, ctx)).collect::<Result<_, _>>()?;
                parts[1..].join(&parts[0]).into_bytes()
            }
            Func::Index => {
                let k = string(&args[1], ctx)?;
                ctx.service_labels.get(&k).map(|v| v.as_bytes().to_vec()).unwrap_or_default()
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_render(t: &str) -> Result<String, String> {
        let labels = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]);
        let env = vec!["FOO=bar".to_string(), "EMPTY=".to_string()];
        let lookup = |kind: Lookup, target: &str| match (kind, target) {
            (Lookup::Secret, "db") => Ok(b"s3cr3t".to_vec()),
            (Lookup::Config, "base") => Ok(b"conf".to_vec()),
            (Lookup::Secret, t) => Err(RenderError(format!("secret target {t} not found"))),
            (Lookup::Config, t) => Err(RenderError(format!("config target {t} not found"))),
        };
        let ctx = Context {
            service_id: "sid",
            service_name: "web",
            service_labels: &labels,
            task_id: "tid",
            task_name: "web.3.tid",
            task_slot: "3",
            node_id: "nid",
            node_hostname: "host-1",
            node_os: "linux",
            node_arch: "x86_64",
            env: &env,
            lookup: &lookup,
        };
        let tpl = Template::parse(t.as_bytes()).map_err(|e| format!("parse: {e}"))?;
        tpl.render(&ctx).map(|b| String::from_utf8(b).unwrap()).map_err(|e| format!("render: {e}"))
    }

    #[test]
    fn fields_and_functions_render_as_docker_renders_them() {
        let r = ctx_render(
            "svc={{.Service.Name}} id={{ .Service.ID }} labels={{.Service.Labels}} a={{.Service.Labels.a}} \
             task={{.Task.Name}} tid={{.Task.ID}} slot={{.Task.Slot}} node={{.Node.ID}} host={{.Node.Hostname}} \
             os={{.Node.Platform.OS}} arch={{.Node.Platform.Architecture}} env={{env \"FOO\"}} missing={{env \"NOPE\"}} \
             sec={{secret \"db\"}} cfg={{config `base`}} join={{join \",\" \"a\" .Task.Slot}} idx={{index .Service.Labels \"b\"}}{{index .Service.Labels \"zz\"}}",
        )
        .unwrap();
        assert_eq!(
            r,
            "svc=web id=sid labels=map[a:1 b:2] a=1 task=web.3.tid tid=tid slot=3 node=nid host=host-1 os=linux \
             arch=x86_64 env=bar missing= sec=s3cr3t cfg=conf join=a,3 idx=2"
        );
        assert_eq!(ctx_render("plain text, no actions\n").unwrap(), "plain text, no actions\n");
        assert_eq!(ctx_render("a {{/* note }} */}} b").unwrap(), "a  b");
        assert_eq!(ctx_render("a  \n {{- .Task.Slot -}} \n  b").unwrap(), "a3b");
        assert_eq!(ctx_render("{{\"x}}y\"}}").unwrap(), "x}}y");
        assert_eq!(ctx_render("{{\"a\\tb\"}}").unwrap(), "a\tb");
    }

    #[test]
    fn missing_labels_and_targets_fail_at_render_time() {
        assert_eq!(ctx_render("{{.Service.Labels.nope}}").unwrap_err(), "render: map has no entry for key \"nope\"");
        assert_eq!(ctx_render("{{secret \"other\"}}").unwrap_err(), "render: secret target other not found");
    }

    #[test]
    fn syntax_errors_and_unsupported_constructs_are_refused_naming_them() {
        for (t, want) in [
            ("x {{ .Service.Name }", "line 1: unclosed action"),
            ("a\nb {{ .Foo }}", "line 2: unknown field .Foo"),
            ("{{ . }}", "unknown field ."),
            ("{{}}", "missing value for command"),
            ("{{ .Service.Name | printf \"%s\" }}", "pipelines"),
            ("{{ printf \"%s\" .Service.Name }}", "function \"printf\" is not supported"),
            ("{{ if .Service.Name }}x{{ end }}", "\"if\" actions are not supported"),
            ("{{ $x := 1 }}", "variables"),
            ("{{ 3 }}", "numbers"),
            ("{{ (env \"A\") }}", "parentheses"),
            ("{{ env }}", "wrong number of args for env"),
            ("{{ env .Service.Labels }}", "expected string"),
            ("{{ .Service.Name .Task.ID }}", "can't give argument to non-function"),
            ("{{ \"abc }}", "unterminated quoted string"),
            ("{{/* open ", "unclosed comment"),
            ("{{ index .Service.Name \"a\" }}", "index is supported only as"),
        ] {
            let e = Template::parse(t.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{t:?}: {e}");
            assert!(e.starts_with("template: line "), "{e}");
        }
    }

    #[test]
    fn binary_text_outside_actions_is_kept() {
        let t = Template::parse(b"\xff\x00{{.Task.Slot}}\xfe").unwrap();
        assert_eq!(t.parts.len(), 3);
        assert!(Template::parse(b"{{ \xff }}").is_err());
    }
}

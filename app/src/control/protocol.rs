//! The control protocol: JSON lines over a Unix stream socket, versioned
//! (`docs/control-protocol.md` is the reference).
//!
//! A request is one line: `{"version":1,"id":7,"command":"conntrack.list","args":{...}}`.
//! Its answer is zero or more item lines `{"id":7,"item":{...}}` (listings, events), then
//! exactly one final line, `{"id":7,"ok":true,"result":{...}}` or
//! `{"id":7,"ok":false,"error":{"code":"...","message":"..."}}`. An events stream has no final
//! line while the client listens. Requests on one connection are answered one after the other,
//! in order.
//!
//! This module is the one definition of the wire format: the server parses requests and
//! writes responses with it, the client writes requests and parses responses with it, and
//! both check a filter's arguments with the same [`FilterArgs::check`].

use ctfw_engine::ops::Filter;
use ctfw_engine::rules::Prefix;
use ctfw_engine::track::tcp::TcpState;
use ctfw_engine::wire::{Family, proto};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::replay::parse_prefix;

/// The protocol version this build speaks, client and server.
pub const VERSION: u64 = 1;

/// The longest request line a server accepts, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Why a request failed: the `code` of an error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Not a JSON object, or `version` or `command` missing or of the wrong type.
    BadRequest,
    /// The request's `version` is not one the server speaks (the error carries the server's
    /// in `protocol`).
    Version,
    /// No such command.
    UnknownCommand,
    /// The command's `args` are wrong.
    BadArgs,
    /// `reload`: the file does not validate (the message is `check-config`'s).
    InvalidConfig,
    /// `reload`: the file changes settings that need a restart (listed in `refused`).
    ReloadRefused,
    /// A worker did not answer in time.
    Timeout,
    /// The instance is stopping.
    ShuttingDown,
    /// Something else went wrong on the server.
    Internal,
}

impl Code {
    /// The code as the protocol spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::Version => "version",
            Code::UnknownCommand => "unknown_command",
            Code::BadArgs => "bad_args",
            Code::InvalidConfig => "invalid_config",
            Code::ReloadRefused => "reload_refused",
            Code::Timeout => "timeout",
            Code::ShuttingDown => "shutting_down",
            Code::Internal => "internal",
        }
    }
}

/// An error response's body.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// What kind of failure.
    pub code: Code,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// More fields of the error object (`protocol` for [`Code::Version`], `refused` for
    /// [`Code::ReloadRefused`]).
    pub extra: Map<String, Value>,
}

impl Failure {
    /// A failure with no extra fields.
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Add a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Failure {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The message naming both versions.
    pub fn version(theirs: u64) -> Failure {
        Failure::new(
            Code::Version,
            format!("protocol version {theirs} is not spoken here: this ctfw speaks {VERSION}"),
        )
        .with("protocol", json!(VERSION))
    }
}

/// A parsed request: its id and what it asks.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in every line of the answer.
    pub id: u64,
    /// The command and its checked arguments.
    pub command: Command,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `hello`: versions, pid, configuration.
    Hello,
    /// `conntrack.list`: the entries matching a filter, streamed as items.
    List(ListArgs),
    /// `conntrack.count`: how many entries match a filter.
    Count(FilterArgs),
    /// `conntrack.delete`: delete the entries matching a (non-empty) filter.
    Delete(FilterArgs),
    /// `conntrack.flush`: delete every entry, or those matching a filter.
    Flush(FilterArgs),
    /// `conntrack.events`: stream table events until the client goes.
    Events(EventArgs),
    /// `stats`: the running counters.
    Stats(FormatArgs),
    /// `rules`: the running rule set with hit counters.
    Rules,
    /// `reload`: re-read the configuration file.
    Reload,
}

impl Command {
    /// Every command name, as the protocol spells it.
    pub const NAMES: [&'static str; 9] = [
        "hello",
        "conntrack.list",
        "conntrack.count",
        "conntrack.delete",
        "conntrack.flush",
        "conntrack.events",
        "stats",
        "rules",
        "reload",
    ];

    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hello => "hello",
            Command::List(_) => "conntrack.list",
            Command::Count(_) => "conntrack.count",
            Command::Delete(_) => "conntrack.delete",
            Command::Flush(_) => "conntrack.flush",
            Command::Events(_) => "conntrack.events",
            Command::Stats(_) => "stats",
            Command::Rules => "rules",
            Command::Reload => "reload",
        }
    }

    /// The command's `args` object (empty ones omitted), for the client to send.
    pub fn args(&self) -> Value {
        let v = match self {
            Command::Hello | Command::Rules | Command::Reload => Value::Null,
            Command::List(a) => a.to_value(),
            Command::Count(a) | Command::Delete(a) | Command::Flush(a) => to_value(a),
            Command::Events(a) => a.to_value(),
            Command::Stats(a) => to_value(a),
        };
        match v {
            Value::Object(m) if m.is_empty() => Value::Null,
            v => v,
        }
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// How a listing, an event stream or the stats are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Objects with named fields (the default).
    #[default]
    Json,
    /// Lines for people: `{"line": "..."}` items (the `conntrack -L` / `-E` lines), or a
    /// `text` result for `stats`.
    Text,
}

impl Format {
    fn is_json(&self) -> bool {
        *self == Format::Json
    }
}

/// Arguments of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormatArgs {
    /// `json` (default) or `text`.
    #[serde(default, skip_serializing_if = "Format::is_json")]
    pub format: Format,
}

/// Arguments of `conntrack.list`: a filter's fields, and `format`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// Which entries.
    pub filter: FilterArgs,
    /// `json` (default): entry objects; `text`: `conntrack -L` lines.
    pub format: Format,
}

/// Arguments of `conntrack.events`: a filter's fields, `types` and `format`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventArgs {
    /// Which entries' events.
    pub filter: FilterArgs,
    /// Which kinds: `new`, `update`, `destroy` (empty: all).
    pub types: Vec<EventKind>,
    /// `json` (default): event objects; `text`: `conntrack -E` lines.
    pub format: Format,
}

/// Take `key` out of `args` and deserialize it, if there.
fn take<T: serde::de::DeserializeOwned>(
    args: &mut Value,
    key: &str,
) -> Result<Option<T>, serde_json::Error> {
    match args.as_object_mut().and_then(|m| m.remove(key)) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some),
    }
}

/// `filter`'s fields with `extra` added.
fn merged(filter: &FilterArgs, extra: &[(&str, Value)]) -> Value {
    let mut v = to_value(filter);
    if let Value::Object(m) = &mut v {
        for (k, x) in extra {
            m.insert((*k).to_owned(), x.clone());
        }
    }
    v
}

impl ListArgs {
    fn to_value(&self) -> Value {
        let extra: Vec<_> = (!self.format.is_json())
            .then(|| ("format", to_value(&self.format)))
            .into_iter()
            .collect();
        merged(&self.filter, &extra)
    }

    fn from_value(mut args: Value) -> Result<ListArgs, serde_json::Error> {
        let format = take(&mut args, "format")?.unwrap_or_default();
        Ok(ListArgs {
            filter: serde_json::from_value(args)?,
            format,
        })
    }
}

impl EventArgs {
    fn to_value(&self) -> Value {
        let mut extra = Vec::new();
        if !self.format.is_json() {
            extra.push(("format", to_value(&self.format)));
        }
        if !self.types.is_empty() {
            extra.push(("types", to_value(&self.types)));
        }
        merged(&self.filter, &extra)
    }

    fn from_value(mut args: Value) -> Result<EventArgs, serde_json::Error> {
        let format = take(&mut args, "format")?.unwrap_or_default();
        let types = take(&mut args, "types")?.unwrap_or_default();
        Ok(EventArgs {
            filter: serde_json::from_value(args)?,
            types,
            format,
        })
    }
}

/// A kind of table event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A connection entered the table.
    New,
    /// Its TCP state or its status (`[ASSURED]`, a first reply) changed.
    Update,
    /// It left the table.
    Destroy,
}

/// A protocol in a filter: a name or a number.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ProtoArg {
    /// 0 to 255.
    Number(u8),
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `gre`.
    Name(String),
}

/// Which entries a command concerns, as sent: every field optional, all given ones must hold.
/// Addresses and ports are those of the ORIGINAL direction, as `conntrack -s/-d/--sport/
/// --dport` match them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterArgs {
    /// `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Protocol name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<ProtoArg>,
    /// TCP state, as `conntrack -L` prints it (`ESTABLISHED`); implies TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ORIGINAL source: an address, or a prefix (`10.0.0.0/8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// ORIGINAL destination: an address or a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    /// ORIGINAL source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// ORIGINAL destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// ICMP type of the ORIGINAL direction (the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// ICMP identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
    /// `true`: only `[ASSURED]` entries; `false`: only the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assured: Option<bool>,
    /// `true`: only `[UNREPLIED]` entries; `false`: only those that saw a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreplied: Option<bool>,
}

impl FilterArgs {
    /// Whether no field is given (the filter matches every entry).
    pub fn is_empty(&self) -> bool {
        *self == FilterArgs::default()
    }

    /// Check every field and build the engine's filter; the message names the field and
    /// what it takes. Fields that contradict each other (an IPv6 source with `family: ipv4`,
    /// a TCP state with `proto: udp`) are refused rather than matching nothing.
    pub fn check(&self) -> Result<Filter, String> {
        let family = match self.family.as_deref() {
            None => None,
            Some("ipv4") => Some(Family::V4),
            Some("ipv6") => Some(Family::V6),
            Some(other) => return Err(format!("family: {other:?}: expected ipv4 or ipv6")),
        };
        let mut proto = match &self.proto {
            None => None,
            Some(ProtoArg::Number(n)) => Some(*n),
            Some(ProtoArg::Name(name)) => Some(proto_number(name).ok_or_else(|| {
                format!(
                    "proto: {name:?}: expected tcp, udp, icmp, icmpv6, gre or a number 0 to 255"
                )
            })?),
        };
        let tcp_state = match self.state.as_deref() {
            None => None,
            Some(s) => {
                let upper = s.to_ascii_uppercase();
                let st = TcpState::ALL
                    .into_iter()
                    .find(|t| t.name() == upper)
                    .ok_or_else(|| {
                        let names: Vec<_> = TcpState::ALL.iter().map(|t| t.name()).collect();
                        format!("state: {s:?}: expected a TCP state: {}", names.join(", "))
                    })?;
                match proto {
                    None => proto = Some(proto::TCP),
                    Some(proto::TCP) => {}
                    Some(p) => return Err(format!("state: a TCP state, but proto is {p}")),
                }
                Some(st)
            }
        };
        let prefix = |key: &str, a: &Option<String>| -> Result<Option<Prefix>, String> {
            let Some(a) = a else { return Ok(None) };
            let p = parse_prefix(a).map_err(|e| format!("{key}: {a:?}: {e:#}"))?;
            if family.is_some_and(|f| f != p.family()) {
                return Err(format!(
                    "{key}: {a} is not an address of family {}",
                    family_name(p.family())
                ));
            }
            Ok(Some(p))
        };
        let src = prefix("src", &self.src)?;
        let dst = prefix("dst", &self.dst)?;
        if let (Some(s), Some(d)) = (src, dst) {
            if s.family() != d.family() {
                return Err("src and dst are of different families".into());
            }
        }
        let family = family.or(src.or(dst).map(|p| p.family()));
        if self.sport.is_some() || self.dport.is_some() {
            match proto {
                Some(proto::TCP | proto::UDP) => {}
                None => return Err("sport/dport: give the protocol too (tcp or udp)".into()),
                Some(p) => return Err(format!("sport/dport: protocol {p} has no ports")),
            }
        }
        if self.icmp_type.is_some() || self.icmp_code.is_some() || self.icmp_id.is_some() {
            match proto {
                Some(proto::ICMP | proto::ICMPV6) => {}
                _ => return Err("icmp_type/icmp_code/icmp_id: give proto icmp or icmpv6".into()),
            }
        }
        Ok(Filter {
            family,
            proto,
            tcp_state,
            src,
            dst,
            sport: self.sport,
            dport: self.dport,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            icmp_id: self.icmp_id,
            assured: self.assured,
            unreplied: self.unreplied,
        })
    }
}

/// `tcp` -> 6, ...; `None` for an unknown name.
pub fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" => proto::ICMPV6,
        "gre" => proto::GRE,
        n => n.parse().ok()?,
    })
}

/// `ipv4` / `ipv6`.
pub const fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// Parse one request line. On failure, the id (when it could be read) and the error to
/// answer with.
pub fn parse_request(line: &[u8]) -> Result<Request, (u64, Failure)> {
    let bad = |id, m: String| (id, Failure::new(Code::BadRequest, m));
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| bad(0, format!("the request is not valid JSON: {e}")))?;
    let Value::Object(mut m) = v else {
        return Err(bad(0, "the request must be a JSON object".into()));
    };
    let id = match m.get("id") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad(0, "id: expected a whole number >= 0".into()))?,
    };
    match m.get("version").map(Value::as_u64) {
        None => {
            return Err(bad(
                id,
                format!("version: missing; this ctfw speaks protocol version {VERSION}"),
            ));
        }
        Some(None) => return Err(bad(id, "version: expected a whole number".into())),
        Some(Some(VERSION)) => {}
        Some(Some(theirs)) => return Err((id, Failure::version(theirs))),
    }
    let command = match m.remove("command") {
        Some(Value::String(s)) => s,
        _ => return Err(bad(id, "command: missing, or not a string".into())),
    };
    let args = match m.remove("args") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(a @ Value::Object(_)) => a,
        Some(_) => return Err(bad(id, "args: expected an object".into())),
    };
    if let Some(k) = m.keys().find(|k| !["id", "version"].contains(&k.as_str())) {
        return Err(bad(
            id,
            format!("unknown key {k:?}: a request has version, id, command and args"),
        ));
    }
    let bad_args = |e: serde_json::Error| {
        (
            id,
            Failure::new(Code::BadArgs, format!("{command}: args: {e}")),
        )
    };
    let no_args = |args: &Value| match args.as_object().and_then(|a| a.keys().next()) {
        Some(k) => Err((
            id,
            Failure::new(
                Code::BadArgs,
                format!("{command}: takes no args (got {k:?})"),
            ),
        )),
        None => Ok(()),
    };
    let checked = |f: &FilterArgs| {
        f.check()
            .map(|_| ())
            .map_err(|e| (id, Failure::new(Code::BadArgs, format!("{command}: {e}"))))
    };
    let cmd = match command.as_str() {
        "hello" => no_args(&args).map(|()| Command::Hello)?,
        "rules" => no_args(&args).map(|()| Command::Rules)?,
        "reload" => no_args(&args).map(|()| Command::Reload)?,
        "stats" => Command::Stats(serde_json::from_value(args).map_err(bad_args)?),
        "conntrack.list" => {
            let a = ListArgs::from_value(args).map_err(bad_args)?;
            checked(&a.filter)?;
            Command::List(a)
        }
        "conntrack.events" => {
            let a = EventArgs::from_value(args).map_err(bad_args)?;
            checked(&a.filter)?;
            Command::Events(a)
        }
        "conntrack.count" | "conntrack.delete" | "conntrack.flush" => {
            let a: FilterArgs = serde_json::from_value(args).map_err(bad_args)?;
            checked(&a)?;
            match command.as_str() {
                "conntrack.count" => Command::Count(a),
                "conntrack.flush" => Command::Flush(a),
                _ if a.is_empty() => {
                    return Err((
                        id,
                        Failure::new(
                            Code::BadArgs,
                            "conntrack.delete: give a filter (or use conntrack.flush to delete \
                             every entry)",
                        ),
                    ));
                }
                _ => Command::Delete(a),
            }
        }
        other => {
            return Err((
                id,
                Failure::new(
                    Code::UnknownCommand,
                    format!(
                        "unknown command {other:?}; commands: {}",
                        Command::NAMES.join(", ")
                    ),
                ),
            ));
        }
    };
    Ok(Request { id, command: cmd })
}

/// A request line (with its newline), as the client sends it.
pub fn request_line(id: u64, command: &Command) -> Vec<u8> {
    let mut v = json!({"version": VERSION, "id": id, "command": command.name()});
    let args = command.args();
    if !args.is_null() {
        v["args"] = args;
    }
    line(&v)
}

/// An item line of the answer to `id`.
pub fn item_line(id: u64, item: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_item(&mut out, id, item);
    out
}

/// Append an item line of the answer to `id` to `out` (a listing writes thousands: the item
/// is serialized in place, not copied into a wrapper object first).
pub fn write_item(out: &mut Vec<u8>, id: u64, item: &Value) {
    out.extend_from_slice(format!("{{\"id\":{id},\"item\":").as_bytes());
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, item);
    out.extend_from_slice(b"}\n");
}

/// The final line of a successful answer to `id`.
pub fn ok_line(id: u64, result: &Value) -> Vec<u8> {
    line(&json!({"id": id, "ok": true, "result": result}))
}

/// The final line of a failed answer to `id`.
pub fn error_line(id: u64, f: &Failure) -> Vec<u8> {
    let mut e = Map::new();
    e.insert("code".into(), json!(f.code.name()));
    e.insert("message".into(), json!(f.message));
    e.extend(f.extra.clone());
    line(&json!({"id": id, "ok": false, "error": e}))
}

fn line(v: &Value) -> Vec<u8> {
    // A `Value` always serializes.
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// One line of an answer, as the client reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// An item of a stream.
    Item(Value),
    /// The final, successful line.
    Ok(Value),
    /// The final, failed line.
    Err(ResponseError),
}

/// An error response as the client reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseError {
    /// The code, as sent (a newer server may send codes this client does not know).
    pub code: String,
    /// The message.
    pub message: String,
    /// The whole error object.
    pub body: Value,
}

/// Parse a response line for request `id`.
pub fn parse_response(id: u64, line: &[u8]) -> Result<Response, String> {
    let v: Value =
        serde_json::from_slice(line).map_err(|e| format!("a response is not valid JSON: {e}"))?;
    if v.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(format!("a response does not answer request {id}: {v}"));
    }
    if let Some(item) = v.get("item") {
        return Ok(Response::Item(item.clone()));
    }
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(Response::Ok(
            v.get("result").cloned().unwrap_or(Value::Null),
        )),
        Some(false) => {
            let body = v.get("error").cloned().unwrap_or(Value::Null);
            let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            Ok(Response::Err(ResponseError {
                code: s("code"),
                message: s("message"),
                body,
            }))
        }
        None => Err(format!("a response is neither an item nor final: {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, (u64, Failure)> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn requests_parse_with_their_arguments() {
        let r = parse(r#"{"version":1,"id":7,"command":"conntrack.list","args":{"proto":"tcp","dport":80,"format":"text"}}"#)
            .expect("valid");
        assert_eq!(r.id, 7);
        let Command::List(a) = &r.command else {
            panic!("{r:?}")
        };
        assert_eq!(a.format, Format::Text);
        assert_eq!(a.filter.dport, Some(80));
        let c = a.filter.check().expect("checks");
        assert_eq!((c.proto, c.dport), (Some(6), Some(80)));
        // The client's line parses back to the same request.
        let back = parse_request(&request_line(7, &r.command)).expect("round trip");
        assert_eq!(back, r);
        assert_eq!(
            parse(r#"{"version":1,"command":"hello"}"#).expect("hello"),
            Request {
                id: 0,
                command: Command::Hello
            }
        );
    }

    #[test]
    fn bad_requests_get_the_right_code_and_keep_their_id() {
        let code = |s: &str| parse(s).map(|_| ()).map_err(|(id, f)| (id, f.code));
        assert_eq!(code("nonsense"), Err((0, Code::BadRequest)));
        assert_eq!(code("[1]"), Err((0, Code::BadRequest)));
        assert_eq!(
            code(r#"{"id":3,"command":"hello"}"#),
            Err((3, Code::BadRequest))
        );
        assert_eq!(
            code(r#"{"version":9,"id":4,"command":"hello"}"#),
            Err((4, Code::Version))
        );
        assert_eq!(
            code(r#"{"version":1,"id":5,"command":"frobnicate"}"#),
            Err((5, Code::UnknownCommand))
        );
        for args in [
            r#"{"proto":"sctpx"}"#,
            r#"{"state":"ESTABLISHED","proto":"udp"}"#,
            r#"{"src":"10.0.0.1","family":"ipv6"}"#,
            r#"{"dport":80}"#,
            r#"{"bogus":1}"#,
            r#"{"sport":70000,"proto":"tcp"}"#,
        ] {
            let s = format!(r#"{{"version":1,"id":6,"command":"conntrack.count","args":{args}}}"#);
            assert_eq!(code(&s), Err((6, Code::BadArgs)), "{args}");
        }
        assert_eq!(
            code(r#"{"version":1,"id":8,"command":"conntrack.delete"}"#),
            Err((8, Code::BadArgs)),
            "delete needs a filter"
        );
        assert_eq!(
            code(r#"{"version":1,"id":9,"command":"rules","args":{"x":1}}"#),
            Err((9, Code::BadArgs))
        );
        let (_, f) = parse(r#"{"version":2,"command":"hello"}"#).expect_err("v2");
        assert!(f.message.contains('2') && f.message.contains('1'), "{f:?}");
        assert_eq!(f.extra["protocol"], json!(VERSION));
    }

    #[test]
    fn a_state_implies_tcp_and_addresses_imply_their_family() {
        let f = FilterArgs {
            state: Some("time_wait".into()),
            dst: Some("2001:db8::1".into()),
            ..FilterArgs::default()
        };
        let c = f.check().expect("valid");
        assert_eq!(c.proto, Some(proto::TCP));
        assert_eq!(c.tcp_state, Some(TcpState::TimeWait));
        assert_eq!(c.family, Some(Family::V6));
    }

    #[test]
    fn responses_round_trip() {
        let item = item_line(3, &json!({"line": "x"}));
        assert_eq!(
            parse_response(3, item.strip_suffix(b"\n").expect("newline")),
            Ok(Response::Item(json!({"line": "x"})))
        );
        let ok = ok_line(3, &json!({"count": 2}));
        assert_eq!(
            parse_response(3, &ok),
            Ok(Response::Ok(json!({"count": 2})))
        );
        let err = error_line(3, &Failure::version(2));
        let Ok(Response::Err(e)) = parse_response(3, &err) else {
            panic!()
        };
        assert_eq!(e.code, "version");
        assert_eq!(e.body["protocol"], json!(VERSION));
        assert!(parse_response(4, &ok).is_err(), "another request's answer");
    }
}

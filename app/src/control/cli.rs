//! The operator's commands that talk to a running instance: `ctfw conntrack list|count|
//! delete|flush|events`, `ctfw stats`, `ctfw rules`, `ctfw reload`.
//!
//! Each sends one request over the control socket ([`client`](super::client)) and prints the
//! answer: by default as conntrack-tools would (`conntrack -L` and `-E` lines on stdout, the
//! `N flow entries have been shown.` trailer on stderr), with `-o json` as JSON lines for
//! scripts. The lines themselves are formatted by the server, with the same formatter as
//! `ctfw replay`'s table, so there is one copy of the format.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ctfw_config::Config;
use serde_json::Value;

use super::client::{ClientError, Connection};
use super::protocol::{
    Command, EventArgs, EventKind, FilterArgs, Format, FormatArgs, ListArgs, ProtoArg,
};

/// How long a command waits for each line of its answer (a reload waits for every worker).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Which instance to talk to.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The instance's control socket [default: the `control.socket` of --config, else
    /// /run/ctfw/ctfw.sock].
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// Take the socket path from this configuration's `control.socket`.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

impl Target {
    /// The socket path: `--socket`, else `--config`'s `control.socket`, else the default.
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        match &self.config {
            Some(c) => Ok(Config::load(c)
                .with_context(|| {
                    format!("cannot read the control socket's path from {}", c.display())
                })?
                .control
                .socket),
            None => Ok(PathBuf::from(ctfw_config::DEFAULT_CONTROL_SOCKET)),
        }
    }

    fn connect(&self) -> Result<(PathBuf, Connection)> {
        let path = self.path()?;
        let conn = Connection::open(&path)?;
        Ok((path, conn))
    }
}

/// Output form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people, like conntrack-tools.
    #[default]
    Text,
    /// JSON (one object per line for listings and events).
    Json,
}

/// `-o`.
#[derive(Debug, Clone, Args)]
pub struct OutputArg {
    /// Output form.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `ctfw conntrack ...`.
#[derive(Debug, Args)]
pub struct ConntrackArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: ConntrackCommand,
}

/// The conntrack subcommands, with conntrack's short forms.
#[derive(Debug, Subcommand)]
enum ConntrackCommand {
    /// List connections (`conntrack -L`).
    #[command(short_flag = 'L')]
    List {
        #[command(flatten)]
        filter: FilterCli,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Count connections (`conntrack -C`).
    #[command(short_flag = 'C')]
    Count {
        #[command(flatten)]
        filter: FilterCli,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Delete the connections matching a filter or a tuple (`conntrack -D`); ASSURED ones too.
    #[command(short_flag = 'D')]
    Delete {
        #[command(flatten)]
        filter: FilterCli,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Delete every connection, or those matching a filter (`conntrack -F`).
    #[command(short_flag = 'F')]
    Flush {
        #[command(flatten)]
        filter: FilterCli,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Print connection events as they happen, until interrupted (`conntrack -E`).
    #[command(short_flag = 'E')]
    Events {
        #[command(flatten)]
        filter: FilterCli,
        /// Event kinds: NEW, UPDATE, DESTROY (comma-separated; default all).
        #[arg(
            short = 'e',
            long = "event",
            value_delimiter = ',',
            value_name = "KIND"
        )]
        events: Vec<String>,
        #[command(flatten)]
        out: OutputArg,
    },
}

/// conntrack-tools' filters. Addresses and ports are those of the ORIGINAL direction.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterCli {
    /// Address family: ipv4 or ipv6.
    #[arg(short = 'f', long, value_name = "FAMILY")]
    family: Option<String>,
    /// Protocol: tcp, udp, icmp, icmpv6, gre or a number.
    #[arg(
        short = 'p',
        long = "proto",
        visible_alias = "protonum",
        value_name = "PROTO"
    )]
    proto: Option<String>,
    /// TCP state (ESTABLISHED, SYN_SENT, TIME_WAIT, ...); implies -p tcp.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// ORIGINAL source address, or prefix (10.0.0.0/8).
    #[arg(
        short = 's',
        long = "src",
        visible_alias = "orig-src",
        value_name = "ADDR"
    )]
    src: Option<String>,
    /// ORIGINAL destination address, or prefix.
    #[arg(
        short = 'd',
        long = "dst",
        visible_alias = "orig-dst",
        value_name = "ADDR"
    )]
    dst: Option<String>,
    /// ORIGINAL source port (needs -p tcp or udp).
    #[arg(long = "sport", visible_alias = "orig-port-src", value_name = "PORT")]
    sport: Option<u16>,
    /// ORIGINAL destination port (needs -p tcp or udp).
    #[arg(long = "dport", visible_alias = "orig-port-dst", value_name = "PORT")]
    dport: Option<u16>,
    /// ICMP type of the ORIGINAL direction (needs -p icmp or icmpv6).
    #[arg(long = "icmp-type", value_name = "TYPE")]
    icmp_type: Option<u8>,
    /// ICMP code (needs -p icmp or icmpv6).
    #[arg(long = "icmp-code", value_name = "CODE")]
    icmp_code: Option<u8>,
    /// ICMP identifier (needs -p icmp or icmpv6).
    #[arg(long = "icmp-id", value_name = "ID")]
    icmp_id: Option<u16>,
    /// Only ASSURED connections.
    #[arg(long)]
    assured: bool,
    /// Only UNREPLIED connections (no reply seen yet).
    #[arg(long)]
    unreplied: bool,
    /// Status bits that must be set: ASSURED, SEEN_REPLY, UNREPLIED (comma-separated).
    #[arg(
        short = 'u',
        long = "status",
        value_delimiter = ',',
        value_name = "STATUS"
    )]
    status: Vec<String>,
}

impl FilterCli {
    /// The protocol's filter, checked as the server will check it.
    fn args(&self) -> Result<FilterArgs> {
        let mut f = FilterArgs {
            family: self.family.clone(),
            proto: self.proto.as_ref().map(|p| match p.parse::<u8>() {
                Ok(n) => ProtoArg::Number(n),
                Err(_) => ProtoArg::Name(p.to_ascii_lowercase()),
            }),
            state: self.state.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
            sport: self.sport,
            dport: self.dport,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            icmp_id: self.icmp_id,
            assured: self.assured.then_some(true),
            unreplied: self.unreplied.then_some(true),
        };
        for s in &self.status {
            match s.to_ascii_uppercase().as_str() {
                "ASSURED" => f.assured = Some(true),
                "SEEN_REPLY" => f.unreplied = Some(false),
                "UNREPLIED" => f.unreplied = Some(true),
                other => bail!("--status {other}: expected ASSURED, SEEN_REPLY or UNREPLIED"),
            }
        }
        if f.unreplied == Some(false) && self.unreplied {
            bail!("--unreplied and --status SEEN_REPLY contradict each other");
        }
        f.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(f)
    }
}

/// Run `ctfw conntrack ...`.
pub fn conntrack(args: &ConntrackArgs) -> Result<()> {
    let target = &args.target;
    match &args.command {
        ConntrackCommand::List { filter, out } => {
            let command = Command::List(ListArgs {
                filter: filter.args()?,
                format: format(out.output),
            });
            let (_, mut conn) = target.connect()?;
            let mut shown = 0u64;
            conn.call(&command, None, Some(ANSWER_TIMEOUT), |item| {
                shown += 1;
                print_item(out.output, &item);
            })?;
            eprintln!("ctfw: {shown} flow entries have been shown.");
            Ok(())
        }
        ConntrackCommand::Count { filter, out } => {
            let (_, mut conn) = target.connect()?;
            let r = conn.call(
                &Command::Count(filter.args()?),
                None,
                Some(ANSWER_TIMEOUT),
                |_| {},
            )?;
            match out.output {
                Output::Json => outln!("{r}"),
                Output::Text => outln!("{}", r["count"]),
            }
            Ok(())
        }
        ConntrackCommand::Delete { filter, out } | ConntrackCommand::Flush { filter, out } => {
            let f = filter.args()?;
            let command = match &args.command {
                ConntrackCommand::Delete { .. } => {
                    if f.is_empty() {
                        bail!(
                            "conntrack delete: give a filter or a tuple (-s, -d, -p, --sport, \
                             --dport, ...); `ctfw conntrack flush` deletes every entry"
                        );
                    }
                    Command::Delete(f)
                }
                _ => Command::Flush(f),
            };
            let (_, mut conn) = target.connect()?;
            let r = conn.call(&command, None, Some(ANSWER_TIMEOUT), |_| {})?;
            match out.output {
                Output::Json => outln!("{r}"),
                Output::Text => {
                    eprintln!("ctfw: {} flow entries have been deleted.", r["deleted"]);
                }
            }
            Ok(())
        }
        ConntrackCommand::Events {
            filter,
            events,
            out,
        } => {
            let mut types = Vec::new();
            for e in events {
                types.push(match e.to_ascii_uppercase().as_str() {
                    "NEW" => EventKind::New,
                    "UPDATE" => EventKind::Update,
                    "DESTROY" => EventKind::Destroy,
                    other => bail!("-e {other}: expected NEW, UPDATE or DESTROY"),
                });
            }
            let command = Command::Events(EventArgs {
                filter: filter.args()?,
                types,
                format: format(out.output),
            });
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop))
                    .context("cannot install signal handlers")?;
            }
            let (path, mut conn) = target.connect()?;
            let mut shown = 0u64;
            // Losses come as `lost` items, each with what was lost since the one before. JSON
            // passes them on; text sums them into at most one warning a second.
            let (mut lost, mut unreported) = (0u64, 0u64);
            let mut warned = std::time::Instant::now() - LOST_WARNING_EVERY;
            let result = conn.call(&command, Some(&stop), None, |item| {
                match item.get("type").and_then(Value::as_str) {
                    Some("subscribed") => {
                        eprintln!(
                            "ctfw: listening for connection events at {} (Ctrl-C to stop)",
                            path.display()
                        );
                    }
                    Some("lost") => {
                        let n = item["count"].as_u64().unwrap_or(0);
                        lost += n;
                        if out.output == Output::Json {
                            print_item(out.output, &item);
                        } else {
                            unreported += n;
                            if warned.elapsed() >= LOST_WARNING_EVERY {
                                eprintln!(
                                    "ctfw: WARNING: {unreported} events were lost \
                                     (ctfw's queues for this listener were full)"
                                );
                                unreported = 0;
                                warned = std::time::Instant::now();
                            }
                        }
                    }
                    _ => {
                        shown += 1;
                        print_item(out.output, &item);
                    }
                }
            });
            eprintln!("ctfw: {shown} flow events have been shown.");
            if lost > 0 {
                eprintln!("ctfw: {lost} flow events were lost.");
            }
            match result {
                Ok(_) | Err(ClientError::Interrupted) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// In text, lost events are reported at most this often.
const LOST_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn format(o: Output) -> Format {
    match o {
        Output::Text => Format::Text,
        Output::Json => Format::Json,
    }
}

/// A listing's or an event stream's item: its line, or the JSON object.
fn print_item(out: Output, item: &Value) {
    match (out, item.get("line").and_then(Value::as_str)) {
        (Output::Text, Some(line)) => outln!("{line}"),
        _ => outln!("{item}"),
    }
}

/// `ctfw stats`.
pub fn stats(target: &Target, out: Output) -> Result<()> {
    let (_, mut conn) = target.connect()?;
    let r = conn.call(
        &Command::Stats(FormatArgs {
            format: format(out),
        }),
        None,
        Some(ANSWER_TIMEOUT),
        |_| {},
    )?;
    match out {
        Output::Json => outln!("{}", pretty(&r)),
        Output::Text => print!("{}", r["text"].as_str().unwrap_or_default()),
    }
    Ok(())
}

/// `ctfw rules`: the running rule set, in `check-config`'s notation, with the packets each
/// rule decided since the last reload (or the start).
pub fn rules(target: &Target, out: Output) -> Result<()> {
    let (_, mut conn) = target.connect()?;
    let r = conn.call(&Command::Rules, None, Some(ANSWER_TIMEOUT), |_| {})?;
    if out == Output::Json {
        outln!("{}", pretty(&r));
        return Ok(());
    }
    outln!(
        "rules of {} (first match wins); packets since {} ({:.1} s ago)",
        r["config"].as_str().unwrap_or("?"),
        if r["generation"] == 0 {
            "start"
        } else {
            "reload"
        },
        r["since_seconds"].as_f64().unwrap_or(0.0)
    );
    let rules = r["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let width = rules
        .iter()
        .filter_map(|x| x["name"].as_str())
        .map(str::len)
        .chain([6])
        .max()
        .unwrap_or(6);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    outln!("  {:>3} {:>12}  {:width$}  rule", "#", "packets", "name");
    // A logged rule's text ends with `(log)`, as check-config prints it.
    for x in rules {
        outln!(
            "  {:>3} {:>12}  {:width$}  {}",
            text(&x["index"]),
            text(&x["packets"]),
            text(&x["name"]),
            text(&x["rule"])
        );
    }
    let p = &r["policy"];
    outln!(
        "  {:>3} {:>12}  {:width$}  -j {}{}",
        "",
        text(&p["packets"]),
        "policy",
        text(&p["action"]).to_ascii_uppercase(),
        if p["log"] == true { " (log)" } else { "" }
    );
    Ok(())
}

/// `ctfw reload`: the instance re-reads its configuration file.
pub fn reload(target: &Target) -> Result<()> {
    let (_, mut conn) = target.connect()?;
    let r = conn.call(&Command::Reload, None, Some(ANSWER_TIMEOUT), |_| {})?;
    outln!(
        "ctfw: reloaded {} ({} rules, policy {}); every connection kept",
        r["config"].as_str().unwrap_or("?"),
        r["rules"],
        r["policy"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

//! ctfw's configuration: a YAML file becomes an immutable, validated [`Config`].
//!
//! The path is YAML -> serde structs that mirror the schema (`raw`, unknown keys refused) ->
//! validation (`build`) -> runtime types: [`Port`]s, [`Dataplane`] settings, the engine's
//! [`EngineConfig`] and the compiled [`RuleSet`]. Every mistake is found at load time and
//! reported as a [`ConfigError`] naming the file, the line and column, the key path and what
//! was expected; nothing is checked again at packet time. The schema reference is
//! `docs/config.md`.
//!
//! Mechanism stays apart from policy: this crate does not use DPDK (a port's device and the
//! EAL arguments are opaque strings here; the one EAL option it knows is the one it refuses,
//! see [`Dataplane::eal_args`]) and the default is deny: no rules means every packet meets the
//! default policy, which is `drop` unless the file says otherwise.
//!
//! ```
//! let cfg = ctfw_config::Config::from_str(
//!     "ports:\n  - {name: inside, device: net_null0, peer: outside}\n  - {name: outside, device: net_null1, peer: inside}\n",
//!     "example.yaml",
//! )
//! .expect("valid");
//! assert_eq!(cfg.ports.len(), 2);
//! assert!(cfg.rules.is_empty());
//! ```

#![forbid(unsafe_code)]

mod build;
mod error;
mod raw;
mod reload;
mod summary;

use std::path::{Path, PathBuf};

use ctfw_engine::pipeline::EngineConfig;
use ctfw_engine::rules::{PortId, RuleSet};
use serde_path_to_error::Segment;
use serde_saphyr::MessageFormatter;

pub use error::{ConfigError, Diagnostic, Pos, Problem};
pub use reload::Refused;

/// The smallest `conntrack.capacity` a file may give. The largest is
/// [`ctfw_engine::table::MAX_CAPACITY`], the most the table can index.
pub const MIN_CAPACITY: u32 = 1024;

/// The most `dataplane.workers`. Each worker gets an exact share of `conntrack.capacity`
/// (at least [`MIN_CAPACITY`] / `MAX_WORKERS` = 16 entries, a table's smallest).
pub const MAX_WORKERS: u16 = 64;

/// The largest `dataplane.burst`. The data plane's burst buffers are sized by it: a larger
/// burst would not fit them.
pub const MAX_BURST: u16 = 256;

/// A validated configuration. Immutable: reloading means loading a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was loaded from (as given, for messages).
    pub source: PathBuf,
    /// The ports; a port's [`PortId`] is its index here.
    pub ports: Vec<Port>,
    /// Data-plane (DPDK) settings.
    pub dataplane: Dataplane,
    /// Engine settings: capacity, tracking knobs and timeouts, parser, fragment and non-IP
    /// policies, peers (`engine.peers[p]` is `ports[p].peer`).
    pub engine: EngineConfig,
    /// The compiled rules and default policy.
    pub rules: RuleSet,
    /// The control socket (`control`).
    pub control: Control,
    /// The Prometheus endpoint (`metrics`).
    pub metrics: Metrics,
    /// Where and how fast logged packets are written (`log`).
    pub log: Logging,
}

/// The default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ctfw/ctfw.sock";

/// `control`: how operators and scripts reach a running instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// The Unix-domain socket `ctfw run` listens on (created owner-only), and the one the
    /// `ctfw conntrack|stats|rules|reload` commands connect to by default.
    pub socket: PathBuf,
    /// A client that takes none of its waiting answer for this many seconds is dropped, so a
    /// stuck reader holds no buffer for ever (`control.client_timeout`).
    pub client_timeout_secs: u32,
}

/// The default of `control.client_timeout`, in seconds.
pub const DEFAULT_CLIENT_TIMEOUT_SECS: u32 = 10;

impl Default for Control {
    fn default() -> Control {
        Control {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            client_timeout_secs: DEFAULT_CLIENT_TIMEOUT_SECS,
        }
    }
}

/// `metrics`: the Prometheus text exposition over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Address `/metrics` is served on; `None` (the default): no HTTP server.
    pub listen: Option<std::net::SocketAddr>,
}

/// Where logged packets go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error (the default; the service manager's journal).
    #[default]
    Stderr,
    /// A file, appended to.
    File(PathBuf),
}

/// `log`: the record of packets decided by rules with `log: true` (and by the default policy
/// with `log.policy: true`), like iptables' `LOG` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    /// Where the JSON lines go.
    pub target: LogTarget,
    /// Records per second each worker may write (token-bucket rate); beyond it records are
    /// suppressed and counted.
    pub rate: u32,
    /// Records a worker may write at once after a quiet period (token-bucket depth).
    pub burst: u32,
    /// Whether packets the default policy decides are logged.
    pub policy: bool,
}

impl Default for Logging {
    fn default() -> Logging {
        Logging {
            target: LogTarget::Stderr,
            rate: 10,
            burst: 50,
            policy: false,
        }
    }
}

/// One port of the firewall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Unique name (`[a-z0-9_-]+`).
    pub name: String,
    /// DPDK device: a PCI address or vdev arguments, opaque to this crate.
    pub device: String,
    /// The port accepted packets leave on. Peers are mutual and never the port itself.
    pub peer: PortId,
    /// The device's MTU: the largest IP packet it receives and sends, link-layer header
    /// excluded ([`MIN_MTU`]..=[`MAX_MTU`], default [`DEFAULT_MTU`]). `ctfw run` also checks
    /// it against what the device allows, and sizes the port's buffers for it.
    pub mtu: u16,
}

/// The default `ports[].mtu`: Ethernet's.
pub const DEFAULT_MTU: u16 = 1500;
/// The smallest `ports[].mtu` (IPv4's minimum; IPv6 needs 1280).
pub const MIN_MTU: u16 = 68;
/// The largest `ports[].mtu`: jumbo frames of 9000 bytes. A device may allow less.
pub const MAX_MTU: u16 = 9000;

/// Whether the EAL uses hugepages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hugepages {
    /// Use them if hugetlbfs is mounted and enough 2 MiB pages are free, else run without;
    /// also fall back to `--no-huge` if the EAL fails to start with them.
    #[default]
    Auto,
    /// Require them.
    On,
    /// Never use them (`--no-huge`).
    Off,
}

impl Hugepages {
    /// Every mode, in the order the documentation lists them.
    pub const ALL: [Hugepages; 3] = [Hugepages::Auto, Hugepages::On, Hugepages::Off];

    /// The mode's name, as `dataplane.hugepages` and `ctfw run --hugepages` spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Hugepages::Auto => "auto",
            Hugepages::On => "on",
            Hugepages::Off => "off",
        }
    }
}

/// Parses a mode by its [`name`](Hugepages::name), for command lines:
///
/// ```
/// use ctfw_config::Hugepages;
/// assert_eq!("off".parse(), Ok(Hugepages::Off));
/// assert!("yes".parse::<Hugepages>().is_err());
/// ```
impl std::str::FromStr for Hugepages {
    type Err = UnknownHugepages;

    fn from_str(s: &str) -> Result<Hugepages, UnknownHugepages> {
        Hugepages::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| UnknownHugepages(s.to_owned()))
    }
}

/// A hugepage mode name that is not `auto`, `on` or `off`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a hugepage mode: expected auto, on or off")]
pub struct UnknownHugepages(pub String);

/// Settings for the DPDK data plane. All have defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// Worker lcores (1..=64; default 1).
    pub workers: u16,
    /// Explicit EAL lcore list (`-l`/`--lcores`), if given.
    pub lcores: Option<String>,
    /// EAL main lcore, if given.
    pub main_lcore: Option<u16>,
    /// Memory to reserve, in MiB (default 256).
    pub memory_mb: u32,
    /// Hugepage use (default auto).
    pub hugepages: Hugepages,
    /// EAL `--file-prefix`; `None` means one unique to the process.
    pub file_prefix: Option<String>,
    /// Packets per RX/TX burst (1..=[`MAX_BURST`]; default 32).
    pub burst: u16,
    /// RX descriptors per queue (default 1024).
    pub rx_descriptors: u16,
    /// TX descriptors per queue (default 1024).
    pub tx_descriptors: u16,
    /// Mbufs in each port's packet pool (default 8191).
    pub mbufs_per_port: u32,
    /// Extra EAL arguments, appended last. Never `--mbuf-pool-ops-name`: the packet pools
    /// must keep DPDK's default multi-producer/multi-consumer mempool ops.
    pub eal_args: Vec<String>,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: 1,
            lcores: None,
            main_lcore: None,
            memory_mb: 256,
            hugepages: Hugepages::Auto,
            file_prefix: None,
            burst: 32,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mbufs_per_port: 8191,
            eal_args: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::from_str(&text, path)
    }

    /// Validates the configuration `text`; `path` names it in messages and in
    /// [`Config::source`].
    #[allow(clippy::should_implement_trait)] // FromStr has no place for the path.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        // A byte-order mark would shift every offset the parser reports.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let ctx = build::Ctx {
            file: path.as_ref(),
            text,
        };
        let raw = parse(text, &ctx)?;
        build::build(raw, &ctx)
    }

    /// The id of the port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        // At most RuleSet::MAX_PORTS ports, so the index fits.
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| PortId(i as u16))
    }

    /// The port with id `id`.
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(usize::from(id.0))
    }

    /// A multi-line human summary (for `ctfw check-config`): ports and peers, data-plane
    /// settings, conntrack knobs and non-default timeouts, the rules one per line in an
    /// iptables-like notation, and the default policy.
    pub fn summary(&self) -> String {
        summary::summary(self)
    }

    /// Rule `rule` in the iptables-like notation of [`Config::summary`] (`None` past the
    /// last rule).
    pub fn rule_line(&self, rule: usize) -> Option<String> {
        let (_, r) = self.rules.iter().nth(rule)?;
        Some(summary::rule_line(self, r))
    }
}

/// Deserializes the document's shape, turning parser errors into diagnostics.
fn parse(text: &str, ctx: &build::Ctx<'_>) -> Result<raw::RawConfig, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    // We render our own messages; `yes`/`on` are not booleans (they would silently change
    // meaning in `hugepages: on`).
    options.with_snippet = false;
    options.strict_booleans = true;
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().clone());
            e.into_inner()
        })
    });
    parsed.map_err(|e| yaml_error(&e, path.as_ref(), ctx))
}

/// A parser error as a diagnostic: unknown keys become [`Problem::UnknownKey`] with a
/// suggestion, wrong shapes [`Problem::Expected`], the rest [`Problem::Yaml`].
fn yaml_error(
    e: &serde_saphyr::Error,
    path: Option<&serde_path_to_error::Path>,
    ctx: &build::Ctx<'_>,
) -> ConfigError {
    let at = e.location().filter(|l| l.line() > 0).map(|l| Pos {
        line: l.line(),
        column: l.column(),
    });
    let msg = serde_saphyr::UserMessageFormatter
        .format_message(e)
        .into_owned();
    let segments: Vec<&Segment> = path.map(|p| p.iter().collect()).unwrap_or_default();

    if let Some((key, valid)) = parse_unknown_field(&msg) {
        // The path ends with the unknown key itself; the rest is where it was found.
        let parent = key_path(segments.split_last().map_or(&[][..], |(_, init)| init));
        let full = if parent.is_empty() {
            key.clone()
        } else {
            format!("{parent}.{key}")
        };
        let suggestion = error::closest(&key, valid.iter().map(String::as_str));
        return ctx.err_at(
            at,
            full,
            Problem::UnknownKey {
                key,
                valid,
                suggestion,
            },
        );
    }
    let key = key_path(&segments);
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let got = match found {
                "sequence" => "a list".to_owned(),
                "map" => "a mapping".to_owned(),
                other => other.to_owned(),
            };
            return ctx.err_at(
                at,
                key,
                Problem::Expected {
                    expected: expected.to_owned(),
                    got,
                },
            );
        }
    }
    let msg = match msg.as_str() {
        "expected mapping start" => "expected a mapping (`key: value` lines) here".to_owned(),
        "expected sequence start" => "expected a list here".to_owned(),
        // serde-saphyr's advice on duplicate keys names its own API, not something a user
        // can do.
        _ => match msg.split_once(", set DuplicateKeyPolicy") {
            Some((head, _)) => head.to_owned(),
            None => msg,
        },
    };
    ctx.err_at(at, key, Problem::Yaml(msg))
}

/// `unknown field `x`, expected one of a, b` -> (`x`, [a, b]).
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let list = rest.strip_prefix(", expected ").unwrap_or("");
    let list = list.strip_prefix("one of ").unwrap_or(list);
    let valid = list
        .split(", ")
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`').to_owned())
        .filter(|s| !s.is_empty() && s != "there are no fields")
        .collect();
    Some((key.to_owned(), valid))
}

/// `rules[2].dport` from a serde path. Each located value (`Spanned`) adds a `value` segment
/// of its own, which is not a key of the file; an unknown segment ends the path.
fn key_path(segments: &[&Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key == "value" => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => break,
        }
    }
    out
}

#[cfg(test)]
mod tests;

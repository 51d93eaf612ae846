//! Configuration errors.
//!
//! Every error about the content of a file is a [`Diagnostic`]: the file, the position of the
//! offending key or value (when known), the key path (`conntrack.timeouts.tcp_established`,
//! `rules[2].dport[1]`) and a typed [`Problem`] that says what was expected. Rendered, it reads
//! like a compiler message:
//!
//! ```text
//! fw.yaml:14:13: conntrack.capacity: expected a whole number between 1024 and 16777215, got "lots"
//! ```

use core::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A position in the configuration file (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column in characters, from 1.
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the configuration: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is wrong.
    #[error(transparent)]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    /// The diagnostic, when the content was at fault.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Read { .. } => None,
        }
    }

    /// The problem, when the content was at fault.
    pub fn problem(&self) -> Option<&Problem> {
        self.diagnostic().map(|d| &d.problem)
    }
}

/// What is wrong, where.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}{problem}", Prefix { file, at: *at, key })]
pub struct Diagnostic {
    /// The file (as given to the loader, for messages).
    pub file: PathBuf,
    /// Where in the file, when known (a missing top-level key has no position).
    pub at: Option<Pos>,
    /// Key path (`ports[1].peer`), empty for the document as a whole.
    pub key: String,
    /// What is wrong.
    pub problem: Problem,
}

/// Renders `file:line:col: key: `, leaving out what is unknown.
struct Prefix<'a> {
    file: &'a PathBuf,
    at: Option<Pos>,
    key: &'a str,
}

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{at}")?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        Ok(())
    }
}

/// What is wrong with a key or value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Problem {
    /// The YAML could not be parsed or does not have the expected structure (as the YAML
    /// parser words it).
    #[error("{0}")]
    Yaml(String),
    /// A key that the schema does not have.
    #[error("unknown key `{key}`{}; valid keys here: {}", DidYouMean(suggestion), valid.join(", "))]
    UnknownKey {
        /// The key found.
        key: String,
        /// The keys allowed at this place.
        valid: Vec<String>,
        /// The closest valid key, if one is close.
        suggestion: Option<String>,
    },
    /// A required key is absent.
    #[error("missing: {what}")]
    Missing {
        /// What to write.
        what: String,
    },
    /// A value of the wrong type, form or range.
    #[error("expected {expected}, got {got}")]
    Expected {
        /// What would be accepted.
        expected: String,
        /// What was found, as written.
        got: String,
    },
    /// A name that must be unique is used twice.
    #[error("duplicate {what} `{name}` (first used on line {first_line})")]
    Duplicate {
        /// What kind of name (`port name`, `device`, `rule name`).
        what: &'static str,
        /// The name.
        name: String,
        /// Line of its first use.
        first_line: u64,
    },
    /// A reference to a port that is not defined.
    #[error("no port named `{name}`{}; the ports are: {}", DidYouMean(suggestion), known.join(", "))]
    UnknownPort {
        /// The name used.
        name: String,
        /// The ports defined.
        known: Vec<String>,
        /// The closest defined port, if one is close.
        suggestion: Option<String>,
    },
    /// Two ports that are not each other's peer.
    #[error(
        "port `{port}` has peer `{peer}`, but `{peer}` has peer `{peer_peer}`; peers must name each other"
    )]
    PeerNotMutual {
        /// The port whose peer is wrong.
        port: String,
        /// Its peer.
        peer: String,
        /// The peer's peer.
        peer_peer: String,
    },
    /// Any other inconsistency, explained.
    #[error("{0}")]
    Invalid(String),
}

/// Renders `; did you mean `x`?` for a suggestion, nothing otherwise.
struct DidYouMean<'a>(&'a Option<String>);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean `{s}`?)"),
            None => Ok(()),
        }
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo: within an
/// edit distance of a third of its length (at least one edit).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != cb));
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("capacity", "capacity"), 0);
        assert_eq!(edit_distance("capacty", "capacity"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_suggests_only_near_misses() {
        let keys = ["capacity", "loose", "be_liberal"];
        assert_eq!(closest("capacty", keys).as_deref(), Some("capacity"));
        assert_eq!(closest("lose", keys).as_deref(), Some("loose"));
        assert_eq!(closest("timeouts", keys), None);
    }

    #[test]
    fn diagnostic_rendering() {
        let d = Diagnostic {
            file: "x.yaml".into(),
            at: Some(Pos {
                line: 14,
                column: 5,
            }),
            key: "conntrack.capacity".into(),
            problem: Problem::Expected {
                expected: "a whole number between 1024 and 16777215".into(),
                got: "\"lots\"".into(),
            },
        };
        assert_eq!(
            d.to_string(),
            "x.yaml:14:5: conntrack.capacity: expected a whole number between 1024 and 16777215, got \"lots\""
        );
        let nowhere = Diagnostic {
            at: None,
            key: String::new(),
            ..d
        };
        assert!(nowhere.to_string().starts_with("x.yaml: expected"));
    }
}

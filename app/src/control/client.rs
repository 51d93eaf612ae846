//! The client side of the control socket, for the `ctfw conntrack|stats|rules|reload`
//! commands (and for `ctfw run`, to name the live instance it refuses to start beside).
//!
//! Errors say what to do: no instance at the path, a socket this user may not open, a server
//! speaking another protocol version, or the server's own error.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{self, Command, Response, ResponseError};

/// How often a blocked read wakes to look at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the path.
    #[error("no ctfw instance is running at {path} ({why})")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// `no such socket` or `connection refused`.
        why: &'static str,
    },
    /// The socket exists but this user may not connect.
    #[error("permission denied on {path}: run as the user that started ctfw (root)")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// The server speaks another protocol version.
    #[error("protocol version mismatch: ctfw at {path} speaks {theirs}, this client speaks {ours}")]
    Version {
        /// The socket path.
        path: PathBuf,
        /// The server's version.
        theirs: String,
        /// This client's.
        ours: u64,
    },
    /// The server answered with an error.
    #[error("{}", .0.message)]
    Server(ResponseError),
    /// The connection failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The server's answer made no sense.
    #[error("control socket {path}: {message}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A stream was stopped (SIGINT) before its end.
    #[error("interrupted")]
    Interrupted,
}

/// A connection to a running instance.
#[derive(Debug)]
pub struct Connection {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Connection {
    /// Connect to the instance listening at `path`.
    pub fn open(path: &Path) -> Result<Connection, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NotRunning {
                path: path.to_path_buf(),
                why: "no such socket",
            },
            io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                path: path.to_path_buf(),
                why: "connection refused",
            },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => ClientError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        Ok(Connection {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            next_id: 1,
        })
    }

    /// Send `command`, pass each item of its answer to `on_item`, and return the final result.
    /// With `stop`, the answer is abandoned with [`ClientError::Interrupted`] once the flag
    /// is set: checked before each line, and a blocked read wakes every [`POLL`] to look. `timeout` bounds each read.
    pub fn call(
        &mut self,
        command: &Command,
        stop: Option<&AtomicBool>,
        timeout: Option<Duration>,
        mut on_item: impl FnMut(Value),
    ) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClientError::Io { path, source }
        };
        let read_timeout = if stop.is_some() { Some(POLL) } else { timeout };
        self.reader
            .get_ref()
            .set_read_timeout(read_timeout)
            .map_err(io(&self.path))?;
        self.reader
            .get_mut()
            .write_all(&protocol::request_line(id, command))
            .map_err(io(&self.path))?;
        let mut line = Vec::new();
        loop {
            // Checked before every line, not only when a read times out: a busy stream
            // (events under load) never lets a read time out.
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(ClientError::Interrupted);
            }
            line.clear();
            let n = loop {
                // `read_until` keeps what it read before a timeout in `line`.
                match self.reader.read_until(b'\n', &mut line) {
                    Ok(_) => break line.len(),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                            return Err(ClientError::Interrupted);
                        }
                        if stop.is_none() {
                            return Err(ClientError::Io {
                                path: self.path.clone(),
                                source: io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "ctfw did not answer in time",
                                ),
                            });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(&self.path)(e)),
                }
            };
            if n == 0 || !line.ends_with(b"\n") {
                return Err(ClientError::Protocol {
                    path: self.path.clone(),
                    message: "ctfw closed the connection before answering (did it stop?)".into(),
                });
            }
            let parsed =
                protocol::parse_response(id, &line).map_err(|message| ClientError::Protocol {
                    path: self.path.clone(),
                    message,
                })?;
            match parsed {
                Response::Item(v) => on_item(v),
                Response::Ok(v) => return Ok(v),
                Response::Err(e) if e.code == protocol::Code::Version.name() => {
                    return Err(ClientError::Version {
                        path: self.path.clone(),
                        theirs: e
                            .body
                            .get("protocol")
                            .map_or("another version".into(), ToString::to_string),
                        ours: protocol::VERSION,
                    });
                }
                Response::Err(e) => return Err(ClientError::Server(e)),
            }
        }
    }
}

/// `hello` to the instance at `path`, waiting at most `timeout` for the answer.
pub fn hello(path: &Path, timeout: Duration) -> Result<Value, ClientError> {
    Connection::open(path)?.call(&Command::Hello, None, Some(timeout), |_| {})
}

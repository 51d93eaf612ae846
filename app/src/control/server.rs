//! The control socket's server: a non-blocking Unix listener and its clients, polled by the
//! main lcore's control loop. It frames requests and buffers answers; what a request means is
//! up to its caller (`run::service`).
//!
//! - **The socket** is bound owner-only without a window in which it is not: it is bound in a
//!   fresh directory of mode 0700 beside its path, set to 0600, then renamed into place. A
//!   directory that does not exist yet is created (0755); existing ones are left as they are.
//!   If the path is already a socket, a connection attempt tells a live instance (refused, with
//!   its pid and configuration) from a stale one left by a dead instance (replaced). At drop,
//!   the socket is removed if it is still the one this server bound.
//! - **Requests** are lines of at most [`protocol::MAX_REQUEST`] bytes; a client's requests are
//!   taken one at a time: the next is parsed only when the previous one is [`finish`]ed.
//! - **Answers** go to a per-client buffer that is written as the socket takes it. Callers
//!   producing streams ask for [`room`] first, so a slow client slows only its own answer; a
//!   client that takes nothing for the stall timeout (`control.client_timeout`, 10 s by
//!   default) while bytes wait is dropped.
//! - **End of input** from a client (it shut down its sending side, as `socat` does) does not
//!   cancel its request: the answer is still written, then the connection is closed. Only for
//!   a stream marked [`ends_on_eof`] (events) does it mean the client went.
//!
//! Nothing here blocks: every socket is non-blocking, and each poll reads and writes at most a
//! fixed budget per client.
//!
//! [`finish`]: Server::finish
//! [`room`]: Server::room
//! [`ends_on_eof`]: Server::ends_on_eof

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::{info, warn};

use super::client;
use super::protocol::{self, Failure, Request};

/// Bytes a client's answer buffer may hold before streams wait ([`Server::room`]).
pub const HIGH_WATER: usize = 256 * 1024;
/// Connections served at once; more are answered with an error and closed.
pub const MAX_CLIENTS: usize = 64;
/// Bytes read from, and written to, one client per poll.
const IO_BUDGET: usize = 256 * 1024;

/// A client, for as long as it is connected. Never reused.
pub type ClientId = u64;

/// What a poll brought.
#[derive(Debug)]
pub enum Incoming {
    /// A request to carry out; answer it with [`Server::finish`].
    Request(ClientId, Request),
    /// The client went (it closed, or was dropped): whatever it asked for can stop.
    Gone(ClientId),
}

/// The control socket, bound.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    bound: Bound,
    clients: Vec<Client>,
    next_id: ClientId,
    /// A client whose waiting answer the socket takes nothing of for this long is dropped.
    stall_timeout: Duration,
}

#[derive(Debug)]
struct Client {
    id: ClientId,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already written.
    written: usize,
    /// A request is being answered.
    busy: bool,
    /// The client shut down its sending side.
    eof: bool,
    /// End of input means the client went (an events stream).
    ends_on_eof: bool,
    /// Since when bytes have waited without the socket taking any.
    stalled_since: Option<Instant>,
    /// Close once the output is written (a request line that was too long).
    closing: bool,
    /// Gone: reported, then removed.
    dead: bool,
}

impl Server {
    /// Bind the socket at `path` (see the module documentation).
    /// A client whose waiting answer the socket takes nothing of for `stall_timeout` is
    /// dropped.
    pub fn bind(path: &Path, stall_timeout: Duration) -> Result<Server> {
        let (bound, listener) = Bound::new(path)?;
        Ok(Server {
            listener,
            bound,
            clients: Vec::new(),
            next_id: 1,
            stall_timeout,
        })
    }

    /// Change the stall timeout (a reload); it applies to stalls already under way.
    pub fn set_stall_timeout(&mut self, stall_timeout: Duration) {
        self.stall_timeout = stall_timeout;
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.bound.path
    }

    /// Accept, read, write; return new requests and departed clients in `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Incoming>) {
        self.accept();
        for c in &mut self.clients {
            if c.dead {
                continue;
            }
            c.read();
            c.write(now, self.stall_timeout);
            if !c.dead && c.eof && c.ends_on_eof {
                c.dead = true;
            }
            // The next request waits until the previous answers have mostly left: a client
            // that sends without reading cannot make its buffer grow without bound.
            if !c.dead && !c.busy && !c.closing && c.pending() < HIGH_WATER {
                if let Some(req) = c.next_request() {
                    c.busy = true;
                    out.push(Incoming::Request(c.id, req));
                }
            }
            if !c.dead && c.pending() == 0 && (c.closing || (c.eof && !c.busy && !c.has_line())) {
                c.dead = true;
            }
        }
        for c in &self.clients {
            if c.dead {
                out.push(Incoming::Gone(c.id));
            }
        }
        self.clients.retain(|c| !c.dead);
    }

    /// Write what is buffered (after answers were added, so that they leave in this poll).
    pub fn flush(&mut self, now: Instant) {
        for c in &mut self.clients {
            if !c.dead {
                c.write(now, self.stall_timeout);
            }
        }
    }

    /// Bytes `client`'s answer may still grow before it should wait; 0 for a gone client.
    pub fn room(&self, client: ClientId) -> usize {
        self.get(client)
            .map_or(0, |c| HIGH_WATER.saturating_sub(c.pending()))
    }

    /// Bytes waiting to be written to `client`.
    pub fn pending(&self, client: ClientId) -> usize {
        self.get(client).map_or(0, Client::pending)
    }

    /// Add bytes (whole lines) to `client`'s answer. False if it is gone.
    pub fn send(&mut self, client: ClientId, bytes: &[u8]) -> bool {
        match self.get_mut(client) {
            Some(c) => {
                c.output.extend_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Add the final line of `client`'s current answer; its next request may then be read.
    pub fn finish(&mut self, client: ClientId, line: &[u8]) {
        if let Some(c) = self.get_mut(client) {
            c.output.extend_from_slice(line);
            c.busy = false;
            c.ends_on_eof = false;
        }
    }

    /// From now on, end of input from `client` means it went (an events stream).
    pub fn ends_on_eof(&mut self, client: ClientId) {
        if let Some(c) = self.get_mut(client) {
            c.ends_on_eof = true;
        }
    }

    /// Clients connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    fn get(&self, id: ClientId) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id && !c.dead)
    }

    fn get_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.id == id && !c.dead)
    }

    fn accept(&mut self) {
        // A few per poll: a flood of connections cannot hold up the control loop.
        for _ in 0..8 {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        warn!("control socket: cannot make a connection non-blocking: {e}");
                        continue;
                    }
                    if self.clients.len() >= MAX_CLIENTS {
                        // Best effort: the socket buffer of a new connection has room for it.
                        let f = Failure::new(
                            protocol::Code::Internal,
                            format!("too many control connections (at most {MAX_CLIENTS})"),
                        );
                        let _ = (&stream).write_all(&protocol::error_line(0, &f));
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    self.clients.push(Client {
                        id,
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        written: 0,
                        busy: false,
                        eof: false,
                        ends_on_eof: false,
                        stalled_since: None,
                        closing: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!("control socket: accept failed: {e}");
                    break;
                }
            }
        }
    }
}

impl Client {
    fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    fn has_line(&self) -> bool {
        self.input.contains(&b'\n')
    }

    fn read(&mut self) {
        if self.eof {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        // Read only while the input holds less than a request's worth: a client that sends
        // faster than its requests are answered waits in its own socket buffer.
        while total < IO_BUDGET && self.input.len() <= protocol::MAX_REQUEST {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
    }

    /// The next request line, parsed; a bad one is answered here and skipped.
    fn next_request(&mut self) -> Option<Request> {
        loop {
            let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
                if self.input.len() > protocol::MAX_REQUEST || (self.eof && !self.input.is_empty())
                {
                    let msg = if self.eof {
                        "the request line has no newline at its end".to_owned()
                    } else {
                        format!(
                            "a request line is longer than {} bytes",
                            protocol::MAX_REQUEST
                        )
                    };
                    let f = Failure::new(protocol::Code::BadRequest, msg);
                    self.output.extend(protocol::error_line(0, &f));
                    self.input.clear();
                    self.closing = true;
                }
                return None;
            };
            let line: Vec<u8> = self.input.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match protocol::parse_request(line) {
                Ok(r) => return Some(r),
                Err((id, f)) => self.output.extend(protocol::error_line(id, &f)),
            }
        }
    }

    fn write(&mut self, now: Instant, stall_timeout: Duration) {
        let mut total = 0;
        while self.pending() > 0 && total < IO_BUDGET {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.pending() == 0 {
            self.output.clear();
            self.written = 0;
            self.stalled_since = None;
        } else {
            if self.written > self.output.len() / 2 {
                self.output.drain(..self.written);
                self.written = 0;
            }
            if total > 0 {
                self.stalled_since = None;
            } else {
                let since = *self.stalled_since.get_or_insert(now);
                if now.duration_since(since) >= stall_timeout {
                    warn!(
                        "control socket: dropping a client that took nothing for {} s",
                        stall_timeout.as_secs()
                    );
                    self.dead = true;
                }
            }
        }
    }
}

/// The socket file this server bound; removed at drop if it is still that file.
#[derive(Debug)]
struct Bound {
    path: PathBuf,
    /// Device and inode of the socket file.
    ident: (u64, u64),
}

impl Bound {
    fn new(path: &Path) -> Result<(Bound, UnixListener)> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => bail!("{}", live_instance(path)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    info!(
                        "control socket {}: left by an instance that is gone; replacing it",
                        path.display()
                    );
                }
                Err(e) => bail!(
                    "cannot tell whether ctfw is already running at {}: {e}",
                    path.display()
                ),
            },
            Ok(_) => bail!(
                "{} exists and is not a socket: remove it, or set another control.socket",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot use {} as the control socket: {e}", path.display()),
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .with_context(|| {
                    format!(
                        "cannot create {} for the control socket; set control.socket (or \
                         --socket) to a path in a directory this user may write",
                        dir.display()
                    )
                })?;
        }
        // Bind in a private directory, restrict, then rename into place: the socket is never
        // reachable with looser permissions.
        let name = path
            .file_name()
            .context("the control socket path has no file name")?;
        let private = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .with_context(|| {
                format!(
                    "cannot create {}: set control.socket (or --socket) to a path in a \
                     directory this user may write",
                    private.display()
                )
            })?;
        let staged = private.join(name);
        let result = (|| -> Result<(UnixListener, (u64, u64))> {
            let listener = UnixListener::bind(&staged)
                .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
                .context("cannot make the control socket owner-only")?;
            std::fs::rename(&staged, path)
                .with_context(|| format!("cannot put the control socket at {}", path.display()))?;
            let m = std::fs::symlink_metadata(path)?;
            listener.set_nonblocking(true)?;
            Ok((listener, (m.dev(), m.ino())))
        })();
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&private);
        let (listener, ident) = result?;
        let bound = Bound {
            path: path.to_path_buf(),
            ident,
        };
        Ok((bound, listener))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.ident {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The refusal to start beside a live instance, naming it when it answers `hello`.
fn live_instance(path: &Path) -> String {
    let who = match client::hello(path, Duration::from_secs(1)) {
        Ok(h) => format!(
            " (pid {}, configuration {})",
            h.get("pid").map_or("?".into(), ToString::to_string),
            h.get("config").and_then(|c| c.as_str()).unwrap_or("?")
        ),
        Err(_) => String::new(),
    };
    format!(
        "another ctfw is running{who} and listening on {}: stop it first, or give this \
         instance another control.socket (or --socket)",
        path.display()
    )
}

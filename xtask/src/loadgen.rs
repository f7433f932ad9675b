//! A small HTTP/1.1 load generator for the `serve` section of `cargo xtask bench`: `std` and
//! `mio` sockets, no HTTP crate, so that `cargo xtask` keeps compiling in seconds.
//!
//! Each client is one keep-alive connection to a loopback address. It sends a request, reads
//! the whole answer (status line, headers, then a `Content-Length` or chunked body), times
//! that round trip, and only then sends the next: a closed loop, so the rate measured is what
//! that many clients waiting for their answers get, not an offered load (a slow answer delays
//! the requests behind it rather than piling them up). A phase ends after a number of
//! requests or a time, whichever comes first; a request under way at the deadline is finished
//! and counted. Any answer with another status than the one expected stops the phase with an
//! error naming it: a rate made of errors would not be a figure.
//!
//! The connections of a phase are driven by one thread per [`CONNECTIONS_PER_THREAD`] of
//! them, each waiting on all of its connections at once (`epoll` through `mio`), as `wrk`
//! does. The first version had a thread per client blocked in `read`: every answer the server
//! wrote woke one thread, and on 2 shared cores that wakeup was charged to the server's
//! `writev` (a profile put 35 % of the server's samples there, in `sock_def_readable`), while
//! the generator took 0.88 of a core at 22,514 gets/s (39 µs a request). Remote clients do not
//! cost the server that. With the event loop and the same server build, two runs measured
//! 28,547 and 25,292 gets/s with the generator at 0.44 and 0.43 of a core (`cargo xtask bench
//! --quick --filter serve`, 32 clients, one session). Two threads of 16 connections each
//! were measured worse than one of 32 (the generator at 0.67–0.74 of a core against 0.49).
//!
//! Considered and rejected: an HTTP client crate (reqwest, ureq) would add minutes of build
//! to every `cargo xtask`; an open-loop generator at a fixed rate would need a target rate
//! chosen in advance.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

/// How long a client waits for an answer before the phase fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer: its status and whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server said it closes the connection after this answer.
    close: bool,
}

impl Reply {
    /// The body as text, shortened for an error message.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((at, _)) => format!("{}...", &text[..at]),
            None => text.to_owned(),
        }
    }
}

/// One keep-alive connection, opened again when the server closes it.
pub struct Client {
    addr: SocketAddr,
    conn: Option<TcpStream>,
}

impl Client {
    /// A client of `addr`, connected at once (so that connecting is not timed with the first
    /// request).
    ///
    /// # Errors
    /// When the address is not loopback or cannot be reached.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let mut c = Client { addr, conn: None };
        c.open()?;
        Ok(c)
    }

    fn open(&mut self) -> io::Result<&mut TcpStream> {
        let stream = connect(self.addr)?;
        Ok(self.conn.insert(stream))
    }

    /// Sends one request (`body` as JSON when not empty, or for a POST) and reads its answer.
    ///
    /// # Errors
    /// When the connection fails or the answer is not HTTP/1.1 as this reader knows it.
    pub fn send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Reply> {
        let mut request = Vec::new();
        encode(&mut request, self.addr, method, path, body);
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.open()?,
        };
        conn.write_all(&request)?;
        let reply = read_reply(conn);
        if reply.as_ref().map_or(true, |r| r.close) {
            self.conn = None;
        }
        reply
    }

    /// `GET path`, whose answer must be 200.
    ///
    /// # Errors
    /// One line naming the path: the request failed, or the answer's status and text.
    pub fn get_ok(&mut self, path: &str) -> Result<Reply, String> {
        let reply = self
            .send("GET", path, b"")
            .map_err(|e| format!("GET {path}: {e}"))?;
        if reply.status != 200 {
            return Err(format!(
                "GET {path} answered {}: {}",
                reply.status,
                reply.text()
            ));
        }
        Ok(reply)
    }
}

/// Writes a request to `addr` into `out` (cleared first): `body` as JSON when not empty, or
/// for a POST.
fn encode(out: &mut Vec<u8>, addr: SocketAddr, method: &str, path: &str, body: &[u8]) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if !body.is_empty() || method == "POST" {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A TCP connection to a loopback address, without Nagle's delay, with a read timeout.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{addr} is not a loopback address: the load generator sends only to this machine"
            ),
        ));
    }
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// `POST`s the file at `file` as an NDJSON body, writing it from another thread while this one
/// reads the answer (the server streams its results while it still reads the body, so writing
/// it all first could fill both directions' buffers and stall), and returns the whole answer.
///
/// # Errors
/// When the file cannot be read or the exchange fails.
pub fn post_file(addr: SocketAddr, path: &str, file: &std::path::Path) -> io::Result<Reply> {
    let len = file.metadata()?.len();
    let mut body = BufReader::new(File::open(file)?);
    let stream = connect(addr)?;
    let mut writer = stream.try_clone()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {len}\r\n\r\n"
    );
    std::thread::scope(|s| {
        let wrote = s.spawn(move || -> io::Result<()> {
            writer.write_all(head.as_bytes())?;
            io::copy(&mut body, &mut writer)?;
            writer.flush()
        });
        let reply = read_reply(&mut &stream);
        if reply.is_err() {
            // Unblocks the writer if the server stopped reading.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let wrote = wrote
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        let reply = reply?;
        // An answer that came before the whole body was sent (an error) is still the answer.
        if reply.status < 300 {
            wrote?;
        }
        Ok(reply)
    })
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn ended(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned())
}

/// The position of the first CRLF in `buf` at or after `from`.
fn crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|at| from + at)
}

/// Parses the answer at the start of `buf`: `Ok(None)` while it is incomplete, or the answer
/// and how many bytes it took. `eof` says nothing more will come: an incomplete answer is
/// then an error, and a body without a length or chunks ends there.
///
/// # Errors
/// When the bytes are not an HTTP/1.1 answer as this reader knows it.
fn parse_reply(buf: &[u8], eof: bool) -> io::Result<Option<(Reply, usize)>> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return match (eof, buf.is_empty()) {
            (false, _) => Ok(None),
            (true, true) => Err(ended("the server closed the connection without an answer")),
            (true, false) => Err(ended("the answer ended within its headers")),
        };
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| bad("an answer's head is not UTF-8".to_owned()))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("not an HTTP/1.1 status line: {line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    for header in lines {
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad(format!("not a header: {header:?}")));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| bad(format!("Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let start = head_end + 4;
    let incomplete = |what: &str| {
        if eof { Err(ended(what)) } else { Ok(None) }
    };
    let (body, used) = if chunked {
        // The chunks' ranges first, and the body copied only once it is complete: a large
        // streamed answer is parsed again after every read until then.
        let mut ranges = Vec::new();
        let mut at = start;
        loop {
            let Some(end) = crlf(buf, at) else {
                return incomplete("the answer ended within its chunks");
            };
            let line = String::from_utf8_lossy(&buf[at..end]);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("not a chunk size: {line:?}")))?;
            at = end + 2;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let Some(end) = crlf(buf, at) else {
                        return incomplete("the answer ended within its trailers");
                    };
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        break;
                    }
                }
                break;
            }
            if buf.len() < at + size + 2 {
                return incomplete("the answer ended within a chunk");
            }
            ranges.push(at..at + size);
            at += size + 2;
        }
        let mut body = Vec::with_capacity(ranges.iter().map(|r| r.len()).sum());
        for r in ranges {
            body.extend_from_slice(&buf[r]);
        }
        (body, at)
    } else if let Some(n) = length {
        if buf.len() < start + n {
            return incomplete("the answer ended within its body");
        }
        (buf[start..start + n].to_vec(), start + n)
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // Neither length nor chunks: the body runs to the end of the connection.
        if !eof {
            return Ok(None);
        }
        close = true;
        (buf[start..].to_vec(), buf.len())
    } else {
        (Vec::new(), start)
    };
    Ok(Some((
        Reply {
            status,
            body,
            close,
        },
        used,
    )))
}

/// Reads one answer: status line, headers, and the body its headers announce. Bytes after it
/// are dropped (a client sends its next request only after the answer to the last).
fn read_reply(r: &mut impl Read) -> io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some((reply, _)) = parse_reply(&buf, n == 0)? {
            return Ok(reply);
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    /// Requests answered.
    pub requests: usize,
    /// From the first request sent to the last answer read, seconds.
    pub seconds: f64,
    /// Every request's round trip, nanoseconds, ascending.
    pub latencies_ns: Vec<u64>,
}

impl Load {
    /// Requests answered per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// A load from sequential timings (one after the other): their sum is the time taken.
    pub fn sequential(mut latencies_ns: Vec<u64>) -> Load {
        latencies_ns.sort_unstable();
        Load {
            requests: latencies_ns.len(),
            seconds: latencies_ns.iter().map(|&ns| ns as f64 / 1e9).sum(),
            latencies_ns,
        }
    }
}

/// One request of a phase: method, path and body.
pub struct Request<'a> {
    pub method: &'static str,
    pub path: String,
    pub body: &'a [u8],
}

/// How a phase is bounded and what it expects.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub clients: usize,
    /// It stops after this many requests...
    pub max_requests: usize,
    /// ...or this long, whichever comes first.
    pub max_time: Duration,
    /// The status every answer must have.
    pub expect: u16,
}

/// Connections one thread of the load generator drives.
pub const CONNECTIONS_PER_THREAD: usize = 64;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What the threads of a phase share.
struct Shared<'m, M> {
    addr: SocketAddr,
    phase: Phase,
    make: &'m M,
    /// The next request number.
    next: AtomicUsize,
    /// Set by the first thread that fails, so that the others stop too.
    stop: AtomicBool,
    start: OnceLock<Instant>,
    barrier: Barrier,
}

/// Runs a phase against `addr`: `phase.clients` connections, each sending the requests `make`
/// gives for request numbers 0, 1, 2... (each number once across all clients; its second
/// argument is a random number of the client's own sequence), driven by one thread per
/// [`CONNECTIONS_PER_THREAD`] of them.
///
/// # Errors
/// A client that cannot connect, a failed exchange, or an answer with another status than
/// `phase.expect`: the first of them, with its request.
pub fn run<'a, M>(addr: SocketAddr, phase: Phase, make: M) -> Result<Load, String>
where
    M: Fn(usize, u64) -> Request<'a> + Sync,
{
    let threads = phase.clients.div_ceil(CONNECTIONS_PER_THREAD).max(1);
    let shared = Shared {
        addr,
        phase,
        make: &make,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        start: OnceLock::new(),
        barrier: Barrier::new(threads),
    };
    let results: Vec<Result<(Vec<u64>, Instant), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                // Client numbers t, t + threads, t + 2 * threads...
                let clients: Vec<usize> = (t..phase.clients).step_by(threads).collect();
                let shared = &shared;
                s.spawn(move || {
                    let result = drive(shared, &clients);
                    if result.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a load generator thread panicked".to_owned()))
            })
            .collect()
    });
    let mut latencies_ns = Vec::new();
    let mut last = None;
    let mut first_error = None;
    for r in results {
        match r {
            Ok((times, ended)) => {
                latencies_ns.extend(times);
                last = last.max(Some(ended));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let seconds = match (shared.start.get(), last) {
        (Some(&s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    latencies_ns.sort_unstable();
    Ok(Load {
        requests: latencies_ns.len(),
        seconds,
        latencies_ns,
    })
}

/// One client of a phase: its connection and the request under way on it.
struct Conn {
    stream: mio::net::TcpStream,
    rng: Rng,
    /// The request being sent, and how much of it is written.
    out: Vec<u8>,
    written: usize,
    /// What has been read of its answer.
    input: Vec<u8>,
    /// The request under way, for an error message, and when it was sent; `None` once the
    /// client has sent its last.
    current: Option<(&'static str, String, Instant)>,
}

impl Conn {
    fn open(addr: SocketAddr, seed: u64) -> io::Result<Conn> {
        Ok(Conn {
            stream: open_nonblocking(addr)?,
            rng: Rng::new(seed),
            out: Vec::new(),
            written: 0,
            input: Vec::new(),
            current: None,
        })
    }

    /// Starts the next request of the phase, if it has one left and time to send it.
    fn start<'a, M>(&mut self, shared: &Shared<'_, M>, started: Instant) -> io::Result<bool>
    where
        M: Fn(usize, u64) -> Request<'a> + Sync,
    {
        self.current = None;
        if shared.stop.load(Ordering::Relaxed) || started.elapsed() >= shared.phase.max_time {
            return Ok(false);
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.phase.max_requests {
            return Ok(false);
        }
        let r = (shared.make)(i, self.rng.next());
        encode(&mut self.out, shared.addr, r.method, &r.path, r.body);
        self.written = 0;
        self.input.clear();
        self.current = Some((r.method, r.path, Instant::now()));
        self.flush()?;
        Ok(true)
    }

    /// An error of the request under way, naming it.
    fn failed(&self, why: &str) -> String {
        match &self.current {
            Some((method, path, _)) => format!("{method} {path}: {why}"),
            None => why.to_owned(),
        }
    }

    /// Writes what is left of the request, until the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(ended("the server closed the connection")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until the answer is whole (then it is returned) or the socket would block.
    fn receive(&mut self, chunk: &mut [u8]) -> io::Result<Option<Reply>> {
        loop {
            let n = match self.stream.read(chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.input.extend_from_slice(&chunk[..n]);
            if let Some((reply, _)) = parse_reply(&self.input, n == 0)? {
                return Ok(Some(reply));
            }
        }
    }
}

/// Drives the connections of `clients` until none has a request left: each sends a request,
/// and its next when the whole answer has come.
fn drive<'a, M>(shared: &Shared<'_, M>, clients: &[usize]) -> Result<(Vec<u64>, Instant), String>
where
    M: Fn(usize, u64) -> Request<'a> + Sync,
{
    let addr = shared.addr;
    let connected: io::Result<Vec<Conn>> = clients
        .iter()
        .map(|&c| Conn::open(addr, c as u64))
        .collect();
    // Every thread waits here, connected or not, so that none is left waiting.
    shared.barrier.wait();
    let started = *shared.start.get_or_init(Instant::now);
    let mut conns = connected.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let io_error = |e: io::Error| format!("load generator: {e}");
    let mut poll = mio::Poll::new().map_err(io_error)?;
    let mut events = mio::Events::with_capacity(conns.len().max(1));
    let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
    let mut live = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.stream, mio::Token(i), interest)
            .map_err(io_error)?;
        if c.start(shared, started).map_err(io_error)? {
            live += 1;
        }
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut times = Vec::new();
    while live > 0 {
        poll.poll(&mut events, Some(READ_TIMEOUT))
            .map_err(io_error)?;
        if events.is_empty() {
            return Err(format!(
                "no answer from {addr} in {} s",
                READ_TIMEOUT.as_secs()
            ));
        }
        for event in &events {
            let c = &mut conns[event.token().0];
            let Some(&(_, _, sent)) = c.current.as_ref() else {
                continue;
            };
            if event.is_writable() {
                c.flush().map_err(|e| c.failed(&e.to_string()))?;
            }
            if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
                continue;
            }
            let Some(reply) = c
                .receive(&mut chunk)
                .map_err(|e| c.failed(&e.to_string()))?
            else {
                continue;
            };
            let took = sent.elapsed();
            if reply.status != shared.phase.expect {
                return Err(c.failed(&format!(
                    "answered {} (expected {}): {}",
                    reply.status,
                    shared.phase.expect,
                    reply.text()
                )));
            }
            times.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            if reply.close {
                poll.registry()
                    .deregister(&mut c.stream)
                    .map_err(io_error)?;
                c.stream = open_nonblocking(addr).map_err(io_error)?;
                poll.registry()
                    .register(&mut c.stream, event.token(), interest)
                    .map_err(io_error)?;
            }
            if !c.start(shared, started).map_err(io_error)? {
                live -= 1;
            }
        }
    }
    Ok((times, Instant::now()))
}

/// [`connect`], then non-blocking for an event loop.
fn open_nonblocking(addr: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let stream = connect(addr)?;
    stream.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(stream))
}

/// xorshift64: each client's own deterministic sequence, without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero, and seeds next to each other start far apart.
        Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn read(raw: &str) -> io::Result<Reply> {
        read_reply(&mut raw.as_bytes())
    }

    #[test]
    fn answers_are_read_by_length_and_by_chunks() {
        let r = read("HTTP/1.1 200 OK\r\ncontent-length: 5\r\netag: \"1\"\r\n\r\nhello")
            .expect("a length");
        assert_eq!(
            (r.status, r.body.as_slice(), r.close),
            (200, &b"hello"[..], false)
        );

        let r = read(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n",
        )
        .expect("chunks");
        assert_eq!(r.body, b"{\"a\":1}");

        let r = read("HTTP/1.1 201 Created\r\nConnection: close\r\ncontent-length: 0\r\n\r\n")
            .expect("closing");
        assert!(r.close && r.body.is_empty() && r.status == 201);
    }

    #[test]
    fn an_answer_is_incomplete_until_its_last_byte() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                           4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let first = raw.len() - "HTTP/1.1 204 No Content\r\n\r\n".len();
        for end in 0..first {
            let parsed = parse_reply(&raw[..end], false).expect("a prefix is not an error");
            assert!(parsed.is_none(), "complete after {end} bytes");
        }
        let (reply, used) = parse_reply(raw, false)
            .expect("an answer")
            .expect("complete");
        assert_eq!((reply.body.as_slice(), used), (&b"{\"a\":1}"[..], first));
        let (next, _) = parse_reply(&raw[used..], false)
            .expect("the next")
            .expect("complete");
        assert!(next.status == 204 && next.body.is_empty());
    }

    #[test]
    fn a_broken_answer_is_an_error() {
        for (raw, kind) in [
            ("", io::ErrorKind::UnexpectedEof),
            ("HTTP/1.0 200 OK\r\n\r\n", io::ErrorKind::InvalidData),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n",
                io::ErrorKind::UnexpectedEof,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
                io::ErrorKind::UnexpectedEof,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                io::ErrorKind::InvalidData,
            ),
        ] {
            let err = read(raw).expect_err(raw);
            assert_eq!(err.kind(), kind, "{raw:?}: {err}");
        }
    }

    #[test]
    fn only_loopback_is_reached() {
        let err = Client::connect("192.0.2.1:80".parse().expect("an address"))
            .err()
            .expect("not loopback");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn sequential_timings_add_up() {
        let l = Load::sequential(vec![3_000_000_000, 1_000_000_000]);
        assert_eq!(l.latencies_ns, [1_000_000_000, 3_000_000_000]);
        assert_eq!(l.rate(), 0.5);
    }

    #[test]
    fn a_phase_against_a_loopback_server_counts_every_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("its address");
        // Two connections, each answering until its client goes away.
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (stream, _) = listener.accept().expect("a client");
                std::thread::spawn(move || {
                    let mut r = BufReader::new(stream);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            let _ = r
                                .get_mut()
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                        }
                    }
                });
            }
        });
        let phase = Phase {
            clients: 2,
            max_requests: 50,
            max_time: Duration::from_secs(30),
            expect: 200,
        };
        let load = run(addr, phase, |i, _| Request {
            method: "GET",
            path: format!("/{i}"),
            body: b"",
        })
        .expect("the phase runs");
        assert_eq!(load.requests, 50);
        assert!(load.seconds > 0.0);
        server.join().expect("the server accepted both");

        let err = run(
            addr,
            Phase {
                clients: 1,
                ..phase
            },
            |_, _| Request {
                method: "GET",
                path: "/".into(),
                body: b"",
            },
        )
        .expect_err("nobody listens any more");
        assert!(err.starts_with("cannot connect"), "{err}");
    }
}

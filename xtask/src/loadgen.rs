//! A small HTTP/1.1 load generator for the `serve` section of `cargo xtask bench`: plain `std`
//! sockets, no HTTP crate, so that `cargo xtask` keeps compiling in seconds.
//!
//! Each client is one thread with one keep-alive connection to a loopback address. It sends a
//! request, reads the whole answer (status line, headers, then a `Content-Length` or chunked
//! body), times that round trip, and only then sends the next: a closed loop, so the rate
//! measured is what that many clients waiting for their answers get, not an offered load (a
//! slow answer delays the requests behind it rather than piling them up). A phase ends after
//! a number of requests or a time, whichever comes first; a request under way at the deadline
//! is finished and counted. Any answer with another status than the one expected stops the
//! phase with an error naming it: a rate made of errors would not be a figure.
//!
//! Considered and rejected: an HTTP client crate (reqwest, ureq) would add minutes of build
//! to every `cargo xtask`, and an async client would measure the same closed loop with more
//! code; an open-loop generator at a fixed rate would need a target rate chosen in advance.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
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
    conn: Option<BufReader<TcpStream>>,
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

    fn open(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        let stream = connect(self.addr)?;
        Ok(self.conn.insert(BufReader::new(stream)))
    }

    /// Sends one request (`body` as JSON when not empty, or for a POST) and reads its answer.
    ///
    /// # Errors
    /// When the connection fails or the answer is not HTTP/1.1 as this reader knows it.
    pub fn send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Reply> {
        let mut request = Vec::with_capacity(128 + body.len());
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
            self.addr
        )?;
        if !body.is_empty() || method == "POST" {
            write!(
                request,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.open()?,
        };
        conn.get_mut().write_all(&request)?;
        let reply = read_reply(conn);
        if reply.as_ref().map_or(true, |r| r.close) {
            self.conn = None;
        }
        reply
    }
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
        let reply = read_reply(&mut BufReader::new(&stream));
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

/// Reads one answer: status line, headers, and the body its headers announce.
fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without an answer",
        ));
    }
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            bad(format!(
                "not an HTTP/1.1 status line: {:?}",
                line.trim_end()
            ))
        })?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the answer ended within its headers",
            ));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad(format!("not a header: {header:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("Content-Length {value:?}")))?,
                );
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("not a chunk size: {:?}", line.trim_end())))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // Neither length nor chunks: the body runs to the end of the connection.
        r.read_to_end(&mut body)?;
        close = true;
    }
    Ok(Reply {
        status,
        body,
        close,
    })
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

/// Runs a phase against `addr`: `phase.clients` threads, each with its own connection,
/// sending the requests `make` gives for request numbers 0, 1, 2... (each number once across
/// all clients; its second argument is a random number of the client's own sequence).
///
/// # Errors
/// A client that cannot connect, a failed exchange, or an answer with another status than
/// `phase.expect`: the first of them, with its request.
pub fn run<'a>(
    addr: SocketAddr,
    phase: Phase,
    make: impl Fn(usize, u64) -> Request<'a> + Sync,
) -> Result<Load, String> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start: OnceLock<Instant> = OnceLock::new();
    let barrier = Barrier::new(phase.clients);
    let results: Vec<Result<(Vec<u64>, Instant), String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..phase.clients)
            .map(|t| {
                let (next, stop, start, barrier, make) = (&next, &stop, &start, &barrier, &make);
                s.spawn(move || {
                    let client = Client::connect(addr);
                    // Every client waits here, connected or not, so that none is left waiting.
                    barrier.wait();
                    let started = *start.get_or_init(Instant::now);
                    let mut client =
                        client.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                    let mut rng = Rng::new(t as u64);
                    let mut times = Vec::new();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < phase.max_time {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= phase.max_requests {
                            break;
                        }
                        let r = make(i, rng.next());
                        let sent = Instant::now();
                        let reply = client.send(r.method, &r.path, r.body);
                        let took = sent.elapsed();
                        let failed = match reply {
                            Ok(reply) if reply.status == phase.expect => None,
                            Ok(reply) => Some(format!(
                                "answered {} (expected {}): {}",
                                reply.status,
                                phase.expect,
                                reply.text()
                            )),
                            Err(e) => Some(e.to_string()),
                        };
                        if let Some(why) = failed {
                            stop.store(true, Ordering::Relaxed);
                            return Err(format!("{} {}: {why}", r.method, r.path));
                        }
                        times.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                    }
                    Ok((times, Instant::now()))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".to_owned()))
            })
            .collect()
    });
    let mut latencies_ns = Vec::new();
    let mut last = None;
    for r in results {
        let (times, ended) = r?;
        latencies_ns.extend(times);
        last = last.max(Some(ended));
    }
    let seconds = match (start.get(), last) {
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

    fn read(raw: &str) -> io::Result<Reply> {
        read_reply(&mut BufReader::new(raw.as_bytes()))
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

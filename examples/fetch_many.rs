//! Fetch many pages over TCP with at most `--limit` connections open — the
//! async side of `loopscope`'s story, on real sockets over the loopback interface.
//!
//! `stream.map(fetch).buffer_unordered(8)` caps the number of *futures*, not of
//! live connections, and closing a connection (`shutdown().await`) is async, which
//! `Drop` cannot do. `for_each_scoped_concurrent(8, acquire, body)` acquires at most
//! eight connections at once, lends each to the body, and awaits its async release
//! before the slot is reused; a failed release reaches the caller with the item's
//! index.
//!
//! This example starts a small server on `127.0.0.1` (an ephemeral port) that
//! counts the connections it holds and how each one ended — a clean close (`FIN`)
//! or a reset (`RST`) — then fetches N pages from it, one connection per page,
//! released by `shutdown()`. The release then waits for the server's own close, so
//! the server has counted the connection as closed before its slot is reused, and
//! the server's peak is exact.
//!
//! ```text
//! cargo run --example fetch_many
//! cargo run --example fetch_many -- --items 5000 --limit 32
//! cargo run --example fetch_many -- --help
//! ```
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream;
use loopscope::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "\
Fetch pages from a loopback server with at most --limit connections open
(loopscope's for_each_scoped_concurrent, released by an async shutdown).

Usage: fetch_many [--items N] [--limit N]

Options:
  --items N   how many pages to fetch, one connection each (default 1000)
  --limit N   the most connections open at once (default 8)
  -h, --help  print this help";

const DEFAULT_ITEMS: usize = 1_000;
const DEFAULT_LIMIT: usize = 8;
/// How long the server "works" on each page, so that connections overlap.
const SERVER_DELAY: Duration = Duration::from_millis(2);

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(UsageError(message)) => {
            eprintln!(
                "error: {message}\n\nUsage: fetch_many [--items N] [--limit N]   (--help for more)"
            );
            std::process::exit(2);
        }
    };
    run(&args).await
}

async fn run(args: &Args) -> io::Result<()> {
    let server = Server::start().await?;
    println!(
        "fetch_many: {} pages from a loopback server, at most {} connections at once\n",
        thousands(args.items as u64),
        args.limit,
    );
    println!(
        "  {:<14} {} (replies after {} ms)",
        "server",
        server.addr,
        SERVER_DELAY.as_millis()
    );

    let client = Client::default();
    let started = Instant::now();
    fetch_all(server.addr, &client, args).await?;
    let elapsed = started.elapsed();

    let stats = &server.stats;
    let row = |label: &str, value: String| println!("  {label:<14} {value}");
    row(
        "pages",
        format!(
            "{} fetched, {}",
            thousands(client.pages.load(Ordering::SeqCst) as u64),
            megabytes(client.bytes.load(Ordering::SeqCst)),
        ),
    );
    row(
        "peak conns",
        format!(
            "{} on the server, {} on the client (limit {})",
            stats.peak.load(Ordering::SeqCst),
            client.peak.load(Ordering::SeqCst),
            args.limit,
        ),
    );
    row(
        "clean closes",
        thousands(stats.clean.load(Ordering::SeqCst) as u64),
    );
    row(
        "resets",
        thousands(stats.resets.load(Ordering::SeqCst) as u64),
    );
    let other = stats.other.load(Ordering::SeqCst);
    if other > 0 {
        row("other errors", thousands(other as u64));
    }
    row(
        "still open",
        format!(
            "{} on the server when the loop returned",
            stats.current.load(Ordering::SeqCst)
        ),
    );
    row("elapsed", seconds(elapsed));
    Ok(())
}

/// Fetches every page, at most `args.limit` connections open at once.
async fn fetch_all(addr: SocketAddr, client: &Client, args: &Args) -> io::Result<()> {
    stream::iter(0..args.items)
        .for_each_scoped_concurrent(
            args.limit,
            // Acquire: one connection per page, counted from before `connect`.
            async_bracket(async |index: usize| client.connect(addr, index).await)
                // Release: `FIN`, then wait for the server's `FIN`.
                .release(|conn| client.close(conn)),
            // Body: the connection is lent, never given away.
            async |conn| {
                let bytes = conn.fetch().await?;
                client.pages.fetch_add(1, Ordering::SeqCst);
                client.bytes.fetch_add(bytes, Ordering::SeqCst);
                Ok::<_, io::Error>(())
            },
        )
        .await?; // A `ScopedError` of `io::Error`s becomes an `io::Error`.
    Ok(())
}

/// The client's counters.
#[derive(Debug, Default)]
struct Client {
    current: AtomicUsize,
    peak: AtomicUsize,
    pages: AtomicUsize,
    bytes: AtomicU64,
}

/// One connection, and the page it fetches.
#[derive(Debug)]
struct Conn {
    index: usize,
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(&self, addr: SocketAddr, index: usize) -> io::Result<Conn> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        match TcpStream::connect(addr).await {
            Ok(stream) => Ok(Conn {
                index,
                stream: BufReader::new(stream),
            }),
            Err(error) => {
                self.current.fetch_sub(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    async fn close(&self, mut conn: Conn) -> io::Result<()> {
        let closed = async {
            conn.stream.get_mut().shutdown().await?;
            let mut rest = [0; 64];
            match conn.stream.read(&mut rest).await? {
                0 => Ok(()),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("page {}: data after the page", conn.index),
                )),
            }
        }
        .await;
        self.current.fetch_sub(1, Ordering::SeqCst);
        closed
    }
}

impl Conn {
    /// Requests the page and reads it; returns its size in bytes.
    async fn fetch(&mut self) -> io::Result<u64> {
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("page {}: {what}", self.index),
            )
        };
        self.stream
            .get_mut()
            .write_all(format!("GET /page/{}\n", self.index).as_bytes())
            .await?;
        let mut header = String::new();
        self.stream.read_line(&mut header).await?;
        // `PAGE <index> <length>`
        let mut fields = header.split_whitespace();
        if fields.next() != Some("PAGE")
            || fields.next().and_then(|n| n.parse().ok()) != Some(self.index)
        {
            return Err(invalid("bad header"));
        }
        let length: usize = fields
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| invalid("no length"))?;
        let mut page = vec![0; length];
        self.stream.read_exact(&mut page).await?;
        if page != page_body(self.index) {
            return Err(invalid("wrong content"));
        }
        Ok((header.len() + length) as u64)
    }
}

/// The content of page `index`: a few hundred bytes to a couple of kilobytes.
fn page_body(index: usize) -> Vec<u8> {
    let length = 200 + index * 37 % 2_000;
    (0..length)
        .map(|i| b'a' + ((index + i) % 26) as u8)
        .collect()
}

/// What the server saw.
#[derive(Debug, Default)]
struct ServerStats {
    /// Connections accepted and not yet closed by the client.
    current: AtomicUsize,
    peak: AtomicUsize,
    /// Closed with a `FIN`: a read returned `Ok(0)`.
    clean: AtomicUsize,
    /// Reset: a read failed with `ConnectionReset`.
    resets: AtomicUsize,
    /// Ended any other way.
    other: AtomicUsize,
}

/// The loopback server; stopped when dropped.
struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let task = tokio::spawn({
            let stats = Arc::clone(&stats);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let now = stats.current.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.peak.fetch_max(now, Ordering::SeqCst);
                    tokio::spawn(serve(stream, Arc::clone(&stats)));
                }
            }
        });
        Ok(Server { addr, stats, task })
    }
}

/// Serves one connection: a page per request line, until the client closes it.
async fn serve(stream: TcpStream, stats: Arc<ServerStats>) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    let mut ended = &stats.other;
    // One request per connection is expected; a few more are tolerated.
    for _ in 0..16 {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) => {
                ended = &stats.clean;
                break;
            }
            Ok(_) => {
                let Some(index) = line
                    .strip_prefix("GET /page/")
                    .and_then(|n| n.trim_end().parse::<usize>().ok())
                else {
                    break;
                };
                tokio::time::sleep(SERVER_DELAY).await;
                let body = page_body(index);
                let mut reply = format!("PAGE {index} {}\n", body.len()).into_bytes();
                reply.extend_from_slice(&body);
                if stream.get_mut().write_all(&reply).await.is_err() {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {
                ended = &stats.resets;
                break;
            }
            Err(_) => break,
        }
    }
    // Counted before the server's side closes (when `stream` drops), so a client
    // waiting for that close knows it has been counted.
    ended.fetch_add(1, Ordering::SeqCst);
    stats.current.fetch_sub(1, Ordering::SeqCst);
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn seconds(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(1) {
        format!("{:.1} ms", elapsed.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", elapsed.as_secs_f64())
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The command line.
#[derive(Debug)]
struct Args {
    items: usize,
    limit: usize,
}

/// Why the command line was rejected; shown with the usage hint, exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, UsageError> {
    let mut parsed = Args {
        items: DEFAULT_ITEMS,
        limit: DEFAULT_LIMIT,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--items 10` and `--items=10`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let value = || {
            inline_value
                .or_else(|| args.next())
                .ok_or_else(|| UsageError(format!("{flag} needs a number")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--items" => parsed.items = parse_number(&flag, &value()?, 1)?,
            "--limit" => parsed.limit = parse_number(&flag, &value()?, 1)?,
            other => return Err(UsageError(format!("unknown argument `{other}`"))),
        }
    }
    Ok(Some(parsed))
}

fn parse_number(flag: &str, text: &str, min: usize) -> Result<usize, UsageError> {
    match text.replace('_', "").parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(UsageError(format!(
            "{flag} must be at least {min}, got {text}"
        ))),
        Err(_) => Err(UsageError(format!("{flag} needs a number, got `{text}`"))),
    }
}

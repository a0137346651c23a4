//! The stream adapters on real TCP connections over the loopback interface.
//!
//! A tokio server on `127.0.0.1:0` counts the connections it holds (now and at
//! peak) and tells a clean close (the client's `FIN`: a read returns `Ok(0)`) from
//! a reset (`RST`: the read fails with `ConnectionReset`). The client fetches
//! "pages" with the scoped adapters, one connection per item, released by an async
//! `shutdown()`.
//!
//! Counting is exact on both sides, with no slack for scheduling lag:
//!
//! - the client counts a connection as open from the start of its acquire (before
//!   `connect`) to the end of its release, the span the adapters cap at `limit`;
//! - the server counts it from `accept` to the moment it sees `EOF`, and only then
//!   closes its side;
//! - the release shuts the client's side down (`FIN`) and then reads until the
//!   server's `FIN` arrives, so the server has already counted the close when the
//!   release completes.
//!
//! The server's span of each connection therefore lies inside the client's, and
//! the server's count can never exceed the client's, nor the limit.
//!
//! One span is cut short on purpose: when an item fails, the concurrent adapters
//! cancel their siblings, and a sibling still inside `connect` has its acquire
//! dropped. The client counts such a connection as `cut`; its socket is closed by
//! that drop, so the server may have accepted it and sees it end without a request.
#![cfg(feature = "stream")]

#[path = "common/watchdog.rs"]
mod watchdog;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use loopscope::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use watchdog::watchdog;

/// How long the server waits before each reply, so that connections overlap and
/// the concurrent adapters can reach their limit.
const REPLY_DELAY: Duration = Duration::from_millis(2);
/// A request is `GET <index>\n`; the reply is `PAGE <index, 6 digits>\n`.
const REPLY_LEN: usize = "PAGE 000000\n".len();
/// Any single wait in these tests; a hang fails the test instead of stalling it.
const DEADLINE: Duration = Duration::from_secs(20);

/// What the server saw, shared with the test.
#[derive(Debug, Default)]
struct ServerStats {
    /// Connections accepted and not yet closed by the client.
    current: AtomicUsize,
    /// The most connections held at once.
    peak: AtomicUsize,
    accepted: AtomicUsize,
    /// Connections the client closed with a `FIN` (a read returned `Ok(0)`).
    clean: AtomicUsize,
    /// Connections the client reset (a read failed with `ConnectionReset`).
    resets: AtomicUsize,
    /// Connections that ended any other way (another error, a malformed request).
    other: AtomicUsize,
}

impl ServerStats {
    fn load(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// A loopback server; aborted when dropped.
struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a connection ended, as the server saw it.
enum Close {
    Clean,
    Reset,
    Other,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stats = Arc::new(ServerStats::default());
        let task = tokio::spawn({
            let stats = Arc::clone(&stats);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let now = stats.current.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.peak.fetch_max(now, Ordering::SeqCst);
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, Arc::clone(&stats)));
                }
            }
        });
        Server { addr, stats, task }
    }

    fn stat(&self, pick: impl Fn(&ServerStats) -> &AtomicUsize) -> usize {
        ServerStats::load(pick(&self.stats))
    }

    /// Waits (bounded) until `pick` reaches `want`; returns the last value seen.
    async fn wait_for(&self, pick: impl Fn(&ServerStats) -> &AtomicUsize, want: usize) -> usize {
        let started = Instant::now();
        loop {
            let seen = self.stat(&pick);
            if seen == want || started.elapsed() > Duration::from_secs(5) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Serves one connection: a reply per request line, until the client closes.
async fn serve(stream: TcpStream, stats: Arc<ServerStats>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut close = Close::Other;
    // A client sends one request per connection; a few more are tolerated.
    for _ in 0..16 {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => {
                close = Close::Clean;
                break;
            }
            Ok(_) => {
                let Some(index) = line
                    .strip_prefix("GET ")
                    .and_then(|rest| rest.trim_end().parse::<usize>().ok())
                else {
                    break;
                };
                tokio::time::sleep(REPLY_DELAY).await;
                let reply = format!("PAGE {index:06}\n");
                if reader.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {
                close = Close::Reset;
                break;
            }
            Err(_) => break,
        }
    }
    // Counted before the server's side is closed (when `reader` drops below), so a
    // client that waits for that close knows it has been counted.
    match close {
        Close::Clean => &stats.clean,
        Close::Reset => &stats.resets,
        Close::Other => &stats.other,
    }
    .fetch_add(1, Ordering::SeqCst);
    stats.current.fetch_sub(1, Ordering::SeqCst);
}

/// The client's side: connections open from the start of acquire to the end of
/// release.
#[derive(Debug, Default)]
struct ClientStats {
    current: AtomicUsize,
    peak: AtomicUsize,
    acquired: AtomicUsize,
    released: AtomicUsize,
    /// Acquires cancelled mid-connect: each was counted open, never acquired.
    cut: AtomicUsize,
}

/// Counts a connection closed again if its acquire is dropped mid-connect.
struct CutIfDropped<'a> {
    client: &'a ClientStats,
    armed: bool,
}

impl Drop for CutIfDropped<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.client.current.fetch_sub(1, Ordering::SeqCst);
            self.client.cut.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// One connection, with the index of the item it serves.
#[derive(Debug)]
struct Conn {
    index: usize,
    stream: TcpStream,
}

/// The acquire: counts the connection as open, then connects. Cancelled while it
/// connects, it counts the connection as cut.
async fn connect(addr: SocketAddr, client: &ClientStats, index: usize) -> io::Result<Conn> {
    let now = client.current.fetch_add(1, Ordering::SeqCst) + 1;
    client.peak.fetch_max(now, Ordering::SeqCst);
    let mut cut = CutIfDropped {
        client,
        armed: true,
    };
    let connected = TcpStream::connect(addr).await;
    cut.armed = false;
    match connected {
        Ok(stream) => {
            client.acquired.fetch_add(1, Ordering::SeqCst);
            Ok(Conn { index, stream })
        }
        Err(error) => {
            client.current.fetch_sub(1, Ordering::SeqCst);
            Err(error)
        }
    }
}

/// The release: `FIN` to the server, then wait for the server's `FIN`, which it
/// sends only after it has counted the close. Fails for the item `fail_at`, after
/// closing cleanly.
async fn close(mut conn: Conn, client: &ClientStats, fail_at: Option<usize>) -> io::Result<()> {
    let closed = async {
        conn.stream.shutdown().await?;
        let mut buf = [0; 16];
        match conn.stream.read(&mut buf).await? {
            0 => Ok(()),
            n => Err(io::Error::other(format!("{n} unexpected bytes before EOF"))),
        }
    }
    .await;
    client.current.fetch_sub(1, Ordering::SeqCst);
    client.released.fetch_add(1, Ordering::SeqCst);
    closed?;
    if fail_at == Some(conn.index) {
        return Err(io::Error::other(format!(
            "injected release failure at item {}",
            conn.index
        )));
    }
    Ok(())
}

/// The body: one request, one reply; returns the index the server echoed.
async fn fetch(conn: &mut Conn) -> io::Result<usize> {
    conn.stream
        .write_all(format!("GET {}\n", conn.index).as_bytes())
        .await?;
    let mut reply = [0; REPLY_LEN];
    conn.stream.read_exact(&mut reply).await?;
    std::str::from_utf8(&reply)
        .ok()
        .and_then(|text| text.strip_prefix("PAGE "))
        .and_then(|digits| digits.trim_end().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed reply"))
}

fn load(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Checks that every connection was closed cleanly and nothing is left open.
///
/// Right when the adapter returns, the client's counts are exact: `expected`
/// connections acquired and released, none open. So is the server's count of
/// clean closes for those, since each release waited for the server's `FIN`.
/// Connections cut mid-connect (`ClientStats::cut`, none on a run without a
/// failure) are closed by their drop, which the server sees a moment later: it
/// may accept up to that many more, and only those may end other than cleanly.
async fn assert_all_closed_cleanly(server: &Server, client: &ClientStats, expected: usize) {
    let cut = load(&client.cut);
    assert_eq!(load(&client.acquired), expected, "client connections");
    assert_eq!(load(&client.released), expected, "client releases");
    assert_eq!(load(&client.current), 0, "client connections still open");
    assert!(
        server.stat(|s| &s.clean) >= expected,
        "clean closes: {} of {expected}",
        server.stat(|s| &s.clean)
    );
    if cut > 0 {
        server.wait_for(|s| &s.current, 0).await;
    }
    assert_eq!(
        server.stat(|s| &s.current),
        0,
        "server connections still open"
    );
    let accepted = server.stat(|s| &s.accepted);
    assert!(
        (expected..=expected + cut).contains(&accepted),
        "accepted {accepted}: {expected} acquired and {cut} cut mid-connect"
    );
    let unclean = server.stat(|s| &s.resets) + server.stat(|s| &s.other);
    assert!(
        unclean <= cut,
        "{unclean} connections ended other than cleanly, {cut} cut mid-connect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_caps_live_connections_and_closes_each_cleanly() {
    let _watchdog =
        watchdog("for_each_scoped_concurrent_caps_live_connections_and_closes_each_cleanly");
    const ITEMS: usize = 1_000;
    const LIMIT: usize = 8;
    let server = Server::start().await;
    let client = ClientStats::default();
    let (addr, client_ref) = (server.addr, &client);
    let fetched = AtomicUsize::new(0);

    tokio::time::timeout(
        DEADLINE,
        stream::iter(0..ITEMS).for_each_scoped_concurrent(
            LIMIT,
            async_bracket(async |index: usize| connect(addr, client_ref, index).await)
                .release(move |conn| close(conn, client_ref, None)),
            async |conn| {
                let echoed = fetch(conn).await?;
                assert_eq!(echoed, conn.index);
                fetched.fetch_add(1, Ordering::SeqCst);
                Ok::<_, io::Error>(())
            },
        ),
    )
    .await
    .expect("finished in time")
    .expect("every item succeeded");

    // Right when the future completes, with no waiting: every release (and so
    // every close the server counts) has completed.
    assert_eq!(load(&fetched), ITEMS);
    assert_all_closed_cleanly(&server, &client, ITEMS).await;
    assert_eq!(
        load(&client.peak),
        LIMIT,
        "client peak: at most, and reaching, the limit"
    );
    assert_eq!(
        server.stat(|s| &s.peak),
        LIMIT,
        "server peak: at most, and reaching, the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_yields_pages_in_input_order() {
    let _watchdog = watchdog("try_map_scoped_concurrent_yields_pages_in_input_order");
    const ITEMS: usize = 1_000;
    const LIMIT: usize = 8;
    let server = Server::start().await;
    let client = ClientStats::default();
    let (addr, client_ref) = (server.addr, &client);

    let results: Vec<_> = tokio::time::timeout(
        DEADLINE,
        stream::iter(0..ITEMS)
            .try_map_scoped_concurrent(
                LIMIT,
                async_bracket(async |index: usize| connect(addr, client_ref, index).await)
                    .release(move |conn| close(conn, client_ref, None)),
                async |conn| fetch(conn).await,
            )
            .collect(),
    )
    .await
    .expect("finished in time");

    assert_eq!(results.len(), ITEMS);
    for (index, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.expect("item succeeded"),
            index,
            "result {index} out of order"
        );
    }
    assert_all_closed_cleanly(&server, &client, ITEMS).await;
    assert_eq!(load(&client.peak), LIMIT, "client peak");
    assert_eq!(server.stat(|s| &s.peak), LIMIT, "server peak");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_is_reported_with_its_index_after_every_close() {
    let _watchdog = watchdog("a_failed_release_is_reported_with_its_index_after_every_close");
    const ITEMS: usize = 1_000;
    const LIMIT: usize = 8;
    const FAIL_AT: usize = 500;
    let server = Server::start().await;
    let client = ClientStats::default();
    let (addr, client_ref) = (server.addr, &client);

    let error = tokio::time::timeout(
        DEADLINE,
        stream::iter(0..ITEMS).for_each_scoped_concurrent(
            LIMIT,
            async_bracket(async |index: usize| connect(addr, client_ref, index).await)
                .release(move |conn| close(conn, client_ref, Some(FAIL_AT))),
            async |conn| fetch(conn).await.map(drop),
        ),
    )
    .await
    .expect("finished in time")
    .expect_err("the release of item 500 fails")
    .into_first();

    assert_eq!(error.index(), FAIL_AT);
    match &error {
        ScopedError::Release { index, source } => {
            assert_eq!(*index, FAIL_AT);
            assert_eq!(source.to_string(), "injected release failure at item 500");
        }
        other => panic!("expected a release error, got {other:?}"),
    }

    // Quiescence: right when the future returns, every connection the client
    // acquired has been released, and the server has seen each one closed
    // cleanly. Siblings still connecting when item 500 failed were cancelled.
    let acquired = load(&client.acquired);
    assert!(
        acquired > FAIL_AT,
        "items up to {FAIL_AT} were acquired, got {acquired}"
    );
    assert_all_closed_cleanly(&server, &client, acquired).await;
    assert!(load(&client.peak) <= LIMIT, "client peak");
    assert!(server.stat(|s| &s.peak) <= LIMIT, "server peak");
}

#[tokio::test]
async fn sequential_for_each_scoped_holds_one_connection_at_a_time() {
    let _watchdog = watchdog("sequential_for_each_scoped_holds_one_connection_at_a_time");
    const ITEMS: usize = 50;
    let server = Server::start().await;
    let client = ClientStats::default();
    let (addr, client_ref) = (server.addr, &client);
    // Sequential state threaded through the fold: a body may not mutate what
    // it captures.
    let echoed = tokio::time::timeout(
        DEADLINE,
        stream::iter(0..ITEMS).try_fold_scoped(
            Vec::new(),
            async_bracket(async |index: usize| connect(addr, client_ref, index).await)
                .release(move |conn| close(conn, client_ref, None)),
            async |mut echoed, conn| {
                echoed.push(fetch(conn).await?);
                Ok::<_, io::Error>(echoed)
            },
        ),
    )
    .await
    .expect("finished in time")
    .expect("every item succeeded");

    assert_eq!(echoed, (0..ITEMS).collect::<Vec<_>>());
    assert_all_closed_cleanly(&server, &client, ITEMS).await;
    assert_eq!(load(&client.peak), 1, "client peak");
    assert_eq!(server.stat(|s| &s.peak), 1, "server peak");
}

/// Negative control: the server does tell a reset from a clean close. A client
/// socket with `SO_LINGER` 0 sends `RST` instead of `FIN` when dropped.
#[tokio::test]
async fn the_server_tells_a_reset_from_a_clean_close() {
    let _watchdog = watchdog("the_server_tells_a_reset_from_a_clean_close");
    let server = Server::start().await;

    // Clean: shutdown, as the adapters' release does.
    let mut clean = TcpStream::connect(server.addr).await.expect("connect");
    clean.write_all(b"GET 1\n").await.expect("request");
    let mut reply = [0; REPLY_LEN];
    clean.read_exact(&mut reply).await.expect("reply");
    clean.shutdown().await.expect("shutdown");
    assert_eq!(server.wait_for(|s| &s.clean, 1).await, 1, "clean closes");

    // Reset: `set_zero_linger` is tokio's non-deprecated
    // `set_linger(Some(Duration::ZERO))`.
    let reset = TcpStream::connect(server.addr).await.expect("connect");
    let mut reset = reset;
    reset.write_all(b"GET 2\n").await.expect("request");
    reset.read_exact(&mut reply).await.expect("reply");
    assert_eq!(&reply, b"PAGE 000002\n");
    reset.set_zero_linger().expect("SO_LINGER 0");
    drop(reset);
    assert_eq!(server.wait_for(|s| &s.resets, 1).await, 1, "resets");

    assert_eq!(server.wait_for(|s| &s.current, 0).await, 0, "still open");
    assert_eq!(server.stat(|s| &s.accepted), 2);
    assert_eq!(server.stat(|s| &s.clean), 1);
    assert_eq!(server.stat(|s| &s.other), 0);
}

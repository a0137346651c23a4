//! Real resources: each adapter against the hand-written loop on real files and
//! real sockets, where the system calls dominate. The performance contract
//! (DESIGN.md) asks for the hand-written loop's time within 1 % on files and
//! 0.1 % on TCP; the machine is shared and noisy, so the figures to quote are
//! the medians of interleaved rounds (`LOOPSCOPE_INTERLEAVE`, below), not one
//! criterion run.
//!
//! - `files_sync_for_each`: 1,000 real 128-byte files, each opened, read to the
//!   end and closed: `for` loop against `for_each_scoped(File::open, ..)` (the
//!   fair loop is the `for` loop).
//! - `files_stream_bracket_for_each`: the same through the stream adapters
//!   (blocking `std::fs` calls in `async` functions on `block_on`): `while let`
//!   with `close(file).await` against `try_fold_scoped` with
//!   `async_bracket(open).release(close)`, and `fair::bracket_try_fold_scoped`.
//! - `tcp_for_each`: 1,000 loopback TCP connections, each connected
//!   (`tokio::net::TcpStream::connect`) and closed (`shutdown().await`), one at
//!   a time: `while let` against `for_each_scoped(async_bracket(connect)
//!   .release(shutdown), ..)`, and `fair::bracket_for_each_scoped`.
//! - `tcp_concurrent_for_each`: the same, 8 at a time:
//!   `try_for_each_concurrent(8, ..)` against `for_each_scoped_concurrent(8,
//!   ..)`, and `fair::for_each_concurrent`.
//!
//! The server is a tokio `TcpListener` on 127.0.0.1 accepting (and dropping
//! each connection) in a task of a 1-worker multi-thread runtime; the clients
//! run in that runtime's `block_on` on the bench thread.
//!
//! ```text
//! cargo bench --bench real_resources                          # criterion
//! LOOPSCOPE_INTERLEAVE=21 cargo bench --bench real_resources  # medians, interleaved
//! ```

mod common;

use std::cell::Cell;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::OnceLock;

use common::{FILE_LEN, Fixture, Trio};
use futures::StreamExt as _;
use futures::executor::block_on;
use futures::stream::{self, TryStreamExt as _};
use loopscope::prelude::*;
use loopscope_benches::fair;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

const TRIOS: &[Trio] = &[
    Trio {
        name: "files_sync_for_each",
        naive: files::sync_naive,
        fair: None,
        adapter: files::sync_adapter,
        files: true,
    },
    Trio {
        name: "files_stream_bracket_for_each",
        naive: files::stream_naive,
        fair: Some(files::stream_fair),
        adapter: files::stream_adapter,
        files: true,
    },
    Trio {
        name: "tcp_for_each",
        naive: tcp::for_each_naive,
        fair: Some(tcp::for_each_fair),
        adapter: tcp::for_each_adapter,
        files: false,
    },
    Trio {
        name: "tcp_concurrent_for_each",
        naive: tcp::concurrent_naive,
        fair: Some(tcp::concurrent_fair),
        adapter: tcp::concurrent_adapter,
        files: false,
    },
];

mod files {
    use super::*;

    pub fn sync_naive(fixture: &Fixture) -> u64 {
        fn run(paths: &[PathBuf], buf: &mut Vec<u8>) -> io::Result<u64> {
            let mut total = 0;
            for path in paths {
                let mut file = File::open(path)?;
                buf.clear();
                total += file.read_to_end(buf)? as u64;
            }
            Ok(total)
        }
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        run(black_box(&fixture.paths), &mut buf).expect("the files are readable")
    }

    pub fn sync_adapter(fixture: &Fixture) -> u64 {
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        let mut total = 0;
        black_box(&fixture.paths)
            .iter()
            .for_each_scoped(File::open, |file| {
                buf.clear();
                file.read_to_end(&mut buf).map(|n| total += n as u64)
            })
            .expect("the files are readable");
        total
    }

    async fn open(path: &PathBuf) -> io::Result<File> {
        File::open(path)
    }

    async fn close(file: File) -> io::Result<()> {
        drop(file);
        Ok(())
    }

    pub fn stream_naive(fixture: &Fixture) -> u64 {
        async fn run(paths: &[PathBuf], buf: &mut Vec<u8>) -> io::Result<u64> {
            let mut paths = pin!(stream::iter(paths));
            let mut total = 0;
            while let Some(path) = paths.next().await {
                let mut file = open(path).await?;
                buf.clear();
                let read = file.read_to_end(buf);
                let closed = close(file).await;
                total += read? as u64;
                closed?;
            }
            Ok(total)
        }
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        block_on(run(black_box(&fixture.paths), &mut buf)).expect("the files are readable")
    }

    pub fn stream_fair(fixture: &Fixture) -> u64 {
        let buf = Vec::with_capacity(4 * FILE_LEN);
        let (_, total) = block_on(fair::bracket_try_fold_scoped(
            stream::iter(black_box(&fixture.paths)),
            (buf, 0),
            open,
            close,
            async |(mut buf, total), file: &mut File| {
                buf.clear();
                let read = file.read_to_end(&mut buf)?;
                Ok::<_, io::Error>((buf, total + read as u64))
            },
        ))
        .expect("the files are readable");
        total
    }

    pub fn stream_adapter(fixture: &Fixture) -> u64 {
        let buf = Vec::with_capacity(4 * FILE_LEN);
        let (_, total) = block_on(stream::iter(black_box(&fixture.paths)).try_fold_scoped(
            (buf, 0),
            async_bracket(open).release(close),
            async |(mut buf, total), file| {
                buf.clear();
                let read = file.read_to_end(&mut buf)?;
                Ok::<_, io::Error>((buf, total + read as u64))
            },
        ))
        .expect("the files are readable");
        total
    }
}

mod tcp {
    use super::*;

    /// The concurrency limit of `tcp_concurrent_for_each`.
    const LIMIT: usize = 8;

    /// The runtime and the listening server, started on first use.
    struct Server {
        runtime: tokio::runtime::Runtime,
        addr: SocketAddr,
    }

    fn server() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()
                .expect("a tokio runtime");
            let listener = runtime
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .expect("bind 127.0.0.1");
            let addr = listener.local_addr().expect("the listener's address");
            runtime.spawn(async move {
                loop {
                    // Accept, and close at once.
                    if let Ok((socket, _)) = listener.accept().await {
                        drop(socket);
                    }
                }
            });
            Server { runtime, addr }
        })
    }

    async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr).await
    }

    async fn shutdown(mut socket: TcpStream) -> io::Result<()> {
        socket.shutdown().await
    }

    /// The body: a connection counted.
    async fn body(_socket: &mut TcpStream) -> io::Result<u64> {
        Ok(1)
    }

    fn addrs(fixture: &Fixture, addr: SocketAddr) -> impl futures::Stream<Item = SocketAddr> {
        stream::iter(black_box(&fixture.items).iter().map(move |_| addr))
    }

    pub fn for_each_naive(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let run = async {
                let mut addrs = pin!(addrs(fixture, server.addr));
                let mut count = 0;
                while let Some(addr) = addrs.next().await {
                    let mut socket = connect(addr).await?;
                    let used = body(&mut socket).await;
                    let closed = shutdown(socket).await;
                    count += used?;
                    closed?;
                }
                Ok::<_, io::Error>(count)
            };
            run.await.expect("no connection fails")
        })
    }

    pub fn for_each_fair(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let count = Cell::new(0);
            fair::bracket_for_each_scoped(
                addrs(fixture, server.addr),
                connect,
                shutdown,
                async |socket: &mut TcpStream| {
                    body(socket).await.map(|n| count.set(count.get() + n))
                },
            )
            .await
            .expect("no connection fails");
            count.get()
        })
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let count = Cell::new(0);
            addrs(fixture, server.addr)
                .for_each_scoped(async_bracket(connect).release(shutdown), async |socket| {
                    body(socket).await.map(|n| count.set(count.get() + n))
                })
                .await
                .expect("no connection fails");
            count.get()
        })
    }

    pub fn concurrent_naive(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let count = Cell::new(0);
            addrs(fixture, server.addr)
                .map(Ok)
                .try_for_each_concurrent(LIMIT, async |addr| {
                    let mut socket = connect(addr).await?;
                    let used = body(&mut socket).await.map(|n| count.set(count.get() + n));
                    let closed = shutdown(socket).await;
                    used?;
                    closed
                })
                .await
                .expect("no connection fails");
            count.get()
        })
    }

    pub fn concurrent_fair(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let count = Cell::new(0);
            fair::for_each_concurrent(
                addrs(fixture, server.addr),
                LIMIT,
                connect,
                shutdown,
                async |socket: &mut TcpStream| {
                    body(socket).await.map(|n| count.set(count.get() + n))
                },
            )
            .await
            .expect("no connection fails");
            count.get()
        })
    }

    pub fn concurrent_adapter(fixture: &Fixture) -> u64 {
        let server = server();
        server.runtime.block_on(async {
            let count = Cell::new(0);
            addrs(fixture, server.addr)
                .for_each_scoped_concurrent(
                    LIMIT,
                    async_bracket(connect).release(shutdown),
                    async |socket| body(socket).await.map(|n| count.set(count.get() + n)),
                )
                .await
                .expect("no connection fails");
            count.get()
        })
    }
}

fn main() {
    common::main(TRIOS, |_, _| {});
}

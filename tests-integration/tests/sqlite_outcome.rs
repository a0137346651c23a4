#![cfg(feature = "stream")]
//! Outcome-aware release with a real database: SQLite (through `rusqlite`, in a
//! file in a temporary directory), a pooled connection per item and a real
//! transaction on it, with `nested(connection, transaction)`.
//!
//! The outer part takes the pool's one connection — a lease whose `Drop` hands
//! it back as it is, as database pools do, and records whether it came back
//! inside a transaction. The inner part runs `BEGIN` on that connection; its
//! release runs `COMMIT` when told `Outcome::Completed`, `ROLLBACK` otherwise.
//! Each item's body inserts a few rows and then returns `Ok`, returns `Err` or
//! panics, as its script says. Afterwards the database holds exactly the rows of
//! the items whose body completed — all of their rows — and none of the others,
//! the connection is back in the pool outside any transaction
//! (`is_autocommit`), and another connection can take the write lock: for the
//! sync and the sequential stream adapters, fail-fast or not. With the `testing`
//! feature, the same holds when the stream adapter is dropped at every poll.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::prelude::*;
use loopscope::{Outcome, async_bracket_on, bracket_on, nested};
use proptest::prelude::*;
use rusqlite::Connection;
use watchdog::watchdog;

const ROWS_PER_ITEM: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    Ok,
    Err,
    Panic,
}

/// The adapter a case runs.
#[derive(Debug, Clone, Copy)]
enum Adapter {
    SyncTryMap,
    SyncForEach,
    StreamTryMap,
    StreamForEach,
}

fn scripts() -> impl Strategy<Value = Vec<Body>> {
    (1usize..10).prop_flat_map(|len| {
        (
            prop::collection::vec(prop_oneof![3 => Just(Body::Ok), 2 => Just(Body::Err)], len),
            prop::option::of(0..len),
        )
            .prop_map(|(mut bodies, panic_at)| {
                if let Some(at) = panic_at {
                    bodies[at] = Body::Panic;
                }
                bodies
            })
    })
}

fn open(dir: &tempfile::TempDir) -> Connection {
    let connection = Connection::open(dir.path().join("items.db")).expect("open the database");
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS rows (item INTEGER NOT NULL, part INTEGER NOT NULL)",
        )
        .expect("create the table");
    connection
}

/// A pool of one connection.
struct Pool {
    idle: RefCell<Option<Connection>>,
    /// Leases handed back while their connection was inside a transaction:
    /// what poisons a pool.
    returned_inside: Cell<usize>,
    /// Transactions a cancelled adapter left to the outer part to roll back.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    rolled_back_on_cancel: Cell<usize>,
}

impl Pool {
    fn new(connection: Connection) -> Self {
        Pool {
            idle: RefCell::new(Some(connection)),
            returned_inside: Cell::new(0),
            rolled_back_on_cancel: Cell::new(0),
        }
    }

    /// Lends the connection for `item`.
    fn take(&self, item: usize) -> Result<Lease<'_>, rusqlite::Error> {
        let connection = self
            .idle
            .borrow_mut()
            .take()
            .expect("the pool's connection is lent twice, or was lost");
        Ok(Lease {
            connection: Some(connection),
            item,
            pool: self,
        })
    }

    /// The connection, back in the pool.
    fn connection(&self) -> std::cell::Ref<'_, Connection> {
        std::cell::Ref::map(self.idle.borrow(), |idle| {
            idle.as_ref().expect("the connection is back in the pool")
        })
    }
}

/// The pool's connection, lent for one item; dropping it hands the connection
/// back as it is.
struct Lease<'p> {
    connection: Option<Connection>,
    item: usize,
    pool: &'p Pool,
}

impl Lease<'_> {
    fn connection(&self) -> &Connection {
        self.connection.as_ref().expect("leased")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let connection = self.connection.take().expect("leased");
        if !connection.is_autocommit() {
            self.pool
                .returned_inside
                .set(self.pool.returned_inside.get() + 1);
        }
        *self.pool.idle.borrow_mut() = Some(connection);
    }
}

/// The body: inserts the item's rows in its transaction, then ends as scripted.
fn insert(connection: &Connection, item: usize, body: Body) -> Result<usize, rusqlite::Error> {
    assert!(
        !connection.is_autocommit(),
        "the body runs inside the transaction"
    );
    for part in 0..ROWS_PER_ITEM {
        connection.execute(
            "INSERT INTO rows (item, part) VALUES (?1, ?2)",
            (item, part),
        )?;
    }
    match body {
        Body::Ok => Ok(item),
        // A failure after the inserts: they must not stay.
        Body::Err => Err(rusqlite::Error::InvalidQuery),
        Body::Panic => panic!("item {item} panicked mid-transaction"),
    }
}

/// `COMMIT` when the body completed, `ROLLBACK` otherwise.
fn end_statement(outcome: Outcome) -> &'static str {
    if outcome == Outcome::Completed {
        "COMMIT"
    } else {
        "ROLLBACK"
    }
}

/// Rows per item in the database.
fn rows(connection: &Connection) -> BTreeMap<usize, usize> {
    let mut statement = connection
        .prepare("SELECT item, COUNT(*) FROM rows GROUP BY item")
        .expect("prepare the query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query the rows")
        .map(|row| row.expect("read a row"))
        .collect()
}

/// Runs `script` through `adapter`; returns whether it panicked.
fn run(pool: &Pool, script: &[Body], adapter: Adapter) -> bool {
    let items = 0..script.len();
    let lease = |item: usize| pool.take(item);
    let sync_transaction = || {
        bracket_on(|lease: &mut Lease<'_>| lease.connection().execute_batch("BEGIN")).release_with(
            |(), lease, outcome| lease.connection().execute_batch(end_statement(outcome)),
        )
    };
    let async_transaction = || {
        async_bracket_on(async |lease: &mut Lease<'_>| lease.connection().execute_batch("BEGIN"))
            .release_with(async |(), lease, outcome| {
                lease.connection().execute_batch(end_statement(outcome))
            })
    };
    let body = |(lease, ()): &mut (Lease<'_>, ())| {
        insert(lease.connection(), lease.item, script[lease.item])
    };
    catch_unwind(AssertUnwindSafe(|| match adapter {
        Adapter::SyncTryMap => {
            let results: Vec<_> = items
                .try_map_scoped(nested(lease, sync_transaction()), body)
                .collect();
            for (item, result) in results.iter().enumerate() {
                assert_eq!(result.is_ok(), script[item] == Body::Ok, "item {item}");
            }
        }
        Adapter::SyncForEach => {
            let result = items.for_each_scoped(nested(lease, sync_transaction()), body);
            let first_failure = script.iter().position(|body| *body != Body::Ok);
            assert_eq!(result.err().map(|error| error.index()), first_failure);
        }
        Adapter::StreamTryMap => block_on(async {
            let results: Vec<_> = stream::iter(items)
                .try_map_scoped(
                    nested(async |item| pool.take(item), async_transaction()),
                    async |pair| body(pair),
                )
                .collect()
                .await;
            for (item, result) in results.iter().enumerate() {
                assert_eq!(result.is_ok(), script[item] == Body::Ok, "item {item}");
            }
        }),
        Adapter::StreamForEach => block_on(async {
            let result = stream::iter(items)
                .for_each_scoped(
                    nested(async |item| pool.take(item), async_transaction()),
                    async |pair| body(pair),
                )
                .await;
            let first_failure = script.iter().position(|body| *body != Body::Ok);
            assert_eq!(result.err().map(|error| error.index()), first_failure);
        }),
    }))
    .is_err()
}

/// The rows the database must hold: every row of each item that completed
/// before the run ended, none of the others.
fn expected(script: &[Body], adapter: Adapter) -> BTreeMap<usize, usize> {
    let fail_fast = matches!(adapter, Adapter::SyncForEach | Adapter::StreamForEach);
    let mut rows = BTreeMap::new();
    for (item, body) in script.iter().enumerate() {
        match body {
            Body::Ok => {
                rows.insert(item, ROWS_PER_ITEM);
            }
            Body::Panic => break,
            Body::Err if fail_fast => break,
            Body::Err => {}
        }
    }
    rows
}

/// The pool's connection is back, outside any transaction, and never came back
/// inside one; another connection can take the write lock.
fn assert_connection_clean(pool: &Pool, dir: &tempfile::TempDir) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        pool.returned_inside.get(),
        0,
        "a lease came back inside its transaction"
    );
    prop_assert!(
        pool.connection().is_autocommit(),
        "the pool's connection is inside a transaction"
    );
    // A transaction left open would hold SQLite's lock: `BEGIN IMMEDIATE` on a
    // second connection would fail with `SQLITE_BUSY`.
    let other = open(dir);
    prop_assert!(other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(cases::config(64))]

    #[test]
    fn failed_and_panicking_items_leave_no_rows_and_no_open_transaction(
        script in scripts(),
        adapter in prop_oneof![
            Just(Adapter::SyncTryMap),
            Just(Adapter::SyncForEach),
            Just(Adapter::StreamTryMap),
            Just(Adapter::StreamForEach),
        ],
    ) {
        let _watchdog = watchdog("failed_and_panicking_items_leave_no_rows_and_no_open_transaction");
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let pool = Pool::new(open(&dir));
        let panicked = run(&pool, &script, adapter);
        let fail_fast = matches!(adapter, Adapter::SyncForEach | Adapter::StreamForEach);
        let panic_reached = if fail_fast {
            script.iter().find(|body| **body != Body::Ok) == Some(&Body::Panic)
        } else {
            script.contains(&Body::Panic)
        };
        prop_assert_eq!(panicked, panic_reached);
        assert_connection_clean(&pool, &dir)?;
        prop_assert_eq!(rows(&pool.connection()), expected(&script, adapter));
        // A fresh connection reads what was committed to the file.
        prop_assert_eq!(rows(&open(&dir)), expected(&script, adapter));
    }
}

/// A `BEGIN` that fails (the connection is already inside a transaction that
/// the pool's previous user left open): the lease goes back at once, its
/// release told `Failed`, and the error is the inner acquire's.
#[test]
fn a_failed_begin_releases_the_connection_and_keeps_the_error() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let pool = Pool::new(open(&dir));
    pool.connection().execute_batch("BEGIN").unwrap();
    let released = RefCell::new(Vec::new());
    let error = [0]
        .into_iter()
        .for_each_scoped(
            nested(
                bracket(|item: usize| pool.take(item)).release_with(|lease, outcome| {
                    released.borrow_mut().push(outcome);
                    // Roll back what the failed `BEGIN` could not start.
                    let rolled_back = lease.connection().execute_batch("ROLLBACK");
                    drop(lease);
                    rolled_back
                }),
                |lease: &mut Lease<'_>| lease.connection().execute_batch("BEGIN"),
            ),
            |_pair| Ok::<_, rusqlite::Error>(()),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            ScopedError::Acquire {
                index: 0,
                source: loopscope::BothAcquireError::Second { release: None, .. },
            }
        ),
        "{error:?}"
    );
    assert_eq!(released.into_inner(), [Outcome::Failed]);
    assert!(pool.connection().is_autocommit());
}

/// The control: the same loop with the transaction's release given by
/// `.release(..)`, which is not told the outcome and so commits every
/// transaction, keeps the rows of a failed item — which the property above
/// would catch.
#[test]
fn without_the_outcome_failed_items_keep_their_rows() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let pool = Pool::new(open(&dir));
    let script = [Body::Ok, Body::Err, Body::Ok];
    let results: Vec<_> = (0..script.len())
        .try_map_scoped(
            nested(
                |item: usize| pool.take(item),
                bracket_on(|lease: &mut Lease<'_>| lease.connection().execute_batch("BEGIN"))
                    .release(|(), lease| lease.connection().execute_batch("COMMIT")),
            ),
            |(lease, ())| insert(lease.connection(), lease.item, script[lease.item]),
        )
        .collect();
    assert!(results[1].is_err());
    let rows = rows(&open(&dir));
    assert_eq!(
        rows.get(&1),
        Some(&ROWS_PER_ITEM),
        "the failed item's rows stayed"
    );
    assert_ne!(rows, expected(&script, Adapter::SyncTryMap));
}

/// Dropped at every poll — between the connection and the `BEGIN`, inside
/// the body, during the `COMMIT` — the connection is back in the pool outside
/// any transaction, and only transactions whose `COMMIT` ran left rows.
#[cfg(feature = "testing")]
mod cancelled {
    use loopscope::testing::{cancel_at_every_poll, yield_n};
    use loopscope::{AsyncAcquire, AsyncAcquireOn, Outcome};

    use super::*;

    /// The outer part: leases the pool's connection. Dropped mid-item, the
    /// adapter hands it the lease: a transaction may still be open on it — the
    /// adapter was dropped while the `COMMIT` or `ROLLBACK` was awaited, so the
    /// inner part could not end it — and it rolls back before the lease goes
    /// back to the pool.
    #[derive(Clone, Copy)]
    struct Leases<'p> {
        pool: &'p Pool,
    }

    impl<'p> AsyncAcquire<usize> for Leases<'p> {
        type Resource = Lease<'p>;
        type Error = rusqlite::Error;
        type ReleaseError = std::convert::Infallible;

        async fn acquire(self, item: usize) -> Result<Lease<'p>, rusqlite::Error> {
            yield_n(1).await;
            self.pool.take(item)
        }

        async fn release(
            self,
            lease: Lease<'p>,
            _outcome: Outcome,
        ) -> Result<(), std::convert::Infallible> {
            drop(lease);
            Ok(())
        }

        fn release_on_cancel(self, lease: Lease<'p>) {
            if !lease.connection().is_autocommit() {
                self.pool
                    .rolled_back_on_cancel
                    .set(self.pool.rolled_back_on_cancel.get() + 1);
                lease
                    .connection()
                    .execute_batch("ROLLBACK")
                    .expect("roll back a cancelled transaction");
            }
        }
    }

    /// The transaction, with a poll point after `BEGIN` and before the end;
    /// when cancelled it rolls back at once, on the connection it is lent
    /// (rusqlite is synchronous, so it can).
    #[derive(Clone, Copy)]
    struct Transaction<'c> {
        committed: &'c RefCell<Vec<usize>>,
    }

    impl<'p> AsyncAcquireOn<Lease<'p>> for Transaction<'_> {
        type Resource = ();
        type Error = rusqlite::Error;
        type ReleaseError = rusqlite::Error;

        async fn acquire(self, lease: &mut Lease<'p>) -> Result<(), rusqlite::Error> {
            yield_n(1).await;
            lease.connection().execute_batch("BEGIN")?;
            yield_n(1).await;
            Ok(())
        }

        async fn release(
            self,
            (): (),
            lease: &mut Lease<'p>,
            outcome: Outcome,
        ) -> Result<(), rusqlite::Error> {
            yield_n(1).await;
            lease.connection().execute_batch(end_statement(outcome))?;
            if outcome == Outcome::Completed {
                self.committed.borrow_mut().push(lease.item);
            }
            yield_n(1).await;
            Ok(())
        }

        fn release_on_cancel(self, (): (), lease: &mut Lease<'p>) {
            lease
                .connection()
                .execute_batch("ROLLBACK")
                .expect("roll back a cancelled transaction");
        }
    }

    #[test]
    fn cancelled_at_every_poll_leaves_the_connection_clean() {
        let _watchdog = watchdog("cancelled_at_every_poll_leaves_the_connection_clean");
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let pool = Pool::new(open(&dir));
        let committed = RefCell::new(Vec::new());
        let mut next_item = 0;
        let polls = cancel_at_every_poll(
            || {
                // Fresh item numbers per run, so that each run's rows are its own.
                let first = next_item;
                next_item += 3;
                stream::iter(first..first + 3).for_each_scoped(
                    nested(
                        Leases { pool: &pool },
                        Transaction {
                            committed: &committed,
                        },
                    ),
                    async |(lease, ())| {
                        insert(lease.connection(), lease.item, Body::Ok)?;
                        yield_n(1).await;
                        Ok::<_, rusqlite::Error>(())
                    },
                )
            },
            |polls| {
                assert_connection_clean(&pool, &dir)
                    .unwrap_or_else(|error| panic!("after {polls} polls: {error}"));
                let committed: BTreeMap<usize, usize> = committed
                    .borrow()
                    .iter()
                    .map(|&item| (item, ROWS_PER_ITEM))
                    .collect();
                assert_eq!(rows(&open(&dir)), committed, "after {polls} polls");
            },
        );
        // Each item: a poll in the lease, two in the `BEGIN`, one in the
        // body, two in the end; and the last poll.
        assert_eq!(polls, 3 * 6 + 1);
        // The full run committed its three items; runs dropped mid-`COMMIT`
        // had their transaction rolled back by the outer part.
        assert!(committed.borrow().len() >= 3);
        assert!(pool.rolled_back_on_cancel.get() > 0);
    }
}

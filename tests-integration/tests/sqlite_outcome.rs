#![cfg(feature = "stream")]
//! Outcome-aware release with a real database: SQLite (through `rusqlite`, in a
//! file in a temporary directory), one transaction per item, committed when the
//! item's body completed and rolled back when it failed or panicked.
//!
//! Each item's body inserts a few rows and then returns `Ok`, returns `Err` or
//! panics, as its script says. Afterwards the database holds exactly the rows of
//! the items whose body completed — all of their rows — and none of the others,
//! for the sync and the sequential stream adapters, fail-fast or not.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::Outcome;
use loopscope::prelude::*;
use proptest::prelude::*;
use rusqlite::{Connection, Transaction};
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

/// The body: inserts the item's rows in its transaction, then ends as scripted.
fn insert(tx: &Transaction<'_>, item: usize, body: Body) -> Result<usize, rusqlite::Error> {
    for part in 0..ROWS_PER_ITEM {
        tx.execute(
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

fn commit_or_roll_back(tx: Transaction<'_>, outcome: Outcome) -> Result<(), rusqlite::Error> {
    if outcome == Outcome::Completed {
        tx.commit()
    } else {
        tx.rollback()
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
fn run(connection: &Connection, script: &[Body], adapter: Adapter) -> bool {
    let items = 0..script.len();
    // The transaction borrows the shared connection: `unchecked_transaction`
    // takes `&Connection`, so each item's acquire can open one.
    let begin = |item: usize| connection.unchecked_transaction().map(|tx| (tx, item));
    let end = |(tx, _item): (Transaction<'_>, usize), outcome| commit_or_roll_back(tx, outcome);
    let body = |(tx, item): &mut (Transaction<'_>, usize)| insert(tx, *item, script[*item]);
    catch_unwind(AssertUnwindSafe(|| match adapter {
        Adapter::SyncTryMap => {
            let results: Vec<_> = items
                .try_map_scoped(bracket(begin).release_with(end), body)
                .collect();
            for (item, result) in results.iter().enumerate() {
                assert_eq!(result.is_ok(), script[item] == Body::Ok, "item {item}");
            }
        }
        Adapter::SyncForEach => {
            let result = items.for_each_scoped(bracket(begin).release_with(end), body);
            let first_failure = script.iter().position(|body| *body != Body::Ok);
            assert_eq!(result.err().map(|error| error.index()), first_failure);
        }
        Adapter::StreamTryMap => block_on(async {
            let results: Vec<_> = stream::iter(items)
                .try_map_scoped(
                    async_bracket(async |item| begin(item))
                        .release_with(|resource, outcome| async move { end(resource, outcome) }),
                    async |resource| body(resource),
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
                    async_bracket(async |item| begin(item))
                        .release_with(|resource, outcome| async move { end(resource, outcome) }),
                    async |resource| body(resource),
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

proptest! {
    #![proptest_config(cases::config(64))]

    #[test]
    fn failed_and_panicking_items_leave_no_rows(
        script in scripts(),
        adapter in prop_oneof![
            Just(Adapter::SyncTryMap),
            Just(Adapter::SyncForEach),
            Just(Adapter::StreamTryMap),
            Just(Adapter::StreamForEach),
        ],
    ) {
        let _watchdog = watchdog("failed_and_panicking_items_leave_no_rows");
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let connection = open(&dir);
        let panicked = run(&connection, &script, adapter);
        let fail_fast = matches!(adapter, Adapter::SyncForEach | Adapter::StreamForEach);
        let panic_reached = if fail_fast {
            script.iter().find(|body| **body != Body::Ok) == Some(&Body::Panic)
        } else {
            script.contains(&Body::Panic)
        };
        prop_assert_eq!(panicked, panic_reached);
        // A fresh connection reads what was committed to the file.
        drop(connection);
        prop_assert_eq!(rows(&open(&dir)), expected(&script, adapter));
    }
}

/// The control: the same loop with the release given by `.release(..)`, which
/// is not told the outcome and so commits every transaction, keeps the rows of a
/// failed item — which the property above would catch.
#[test]
fn without_the_outcome_failed_items_keep_their_rows() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let connection = open(&dir);
    let script = [Body::Ok, Body::Err, Body::Ok];
    let results: Vec<_> = (0..script.len())
        .try_map_scoped(
            bracket(|item: usize| connection.unchecked_transaction().map(|tx| (tx, item)))
                .release(|(tx, _item): (Transaction<'_>, usize)| tx.commit()),
            |(tx, item)| insert(tx, *item, script[*item]),
        )
        .collect();
    assert!(results[1].is_err());
    drop(connection);
    let rows = rows(&open(&dir));
    assert_eq!(
        rows.get(&1),
        Some(&ROWS_PER_ITEM),
        "the failed item's rows stayed"
    );
    assert_ne!(rows, expected(&script, Adapter::SyncTryMap));
}

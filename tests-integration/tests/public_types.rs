//! The auto traits of every public type: `Send`, `Sync` and `Unpin` hold
//! whenever the type's parameters have them, so wrapping a closure in a bracket,
//! or an error in a `ScopedError`, never costs a user the ability to move it
//! across threads or to poll it without pinning. Checked at compile time: a
//! type that lost one of them stops this file from compiling.

use std::io;

use loopscope::{Acquire, Bracket, Outcome, ScopedError, TryMapScoped, WithOutcome, WithRelease};
use loopscope::{Both, BothAcquireError, BothReleaseError};

/// Every auto trait a plain value type should have.
fn all<T: Send + Sync + Unpin>() {}

// Stand-ins for the user's closures: fn pointers are `Send + Sync + Unpin`.
type Open = fn(u32) -> io::Result<u32>;
type Close = fn(u32) -> io::Result<()>;
type CloseWith = fn(u32, Outcome) -> io::Result<()>;
type Body = fn(&mut u32) -> io::Result<u32>;

#[test]
fn core_types_are_send_sync_and_unpin() {
    all::<Outcome>();
    all::<ScopedError<io::Error, io::Error, io::Error>>();
    all::<Bracket<Open, u32>>();
    all::<WithRelease<Open, u32, Close>>();
    all::<WithRelease<Open, u32, WithOutcome<CloseWith>>>();
    all::<WithOutcome<CloseWith>>();
    all::<TryMapScoped<std::vec::IntoIter<u32>, WithRelease<Open, u32, Close>, Body>>();
    all::<Both<Open, Bracket<Open, u32>>>();
    all::<BothAcquireError<io::Error, io::Error, io::Error>>();
    all::<BothReleaseError<io::Error, io::Error>>();
}

/// The brackets are `Acquire`s through the stand-ins too: the checks above are
/// of the types users really get.
#[test]
fn the_stand_ins_make_real_brackets() {
    fn acquire<A: Acquire<u32>>(_: &A) {}
    let open: Open = Ok;
    let close: Close = |_| Ok(());
    acquire(&loopscope::bracket(open).release(close));
    acquire(&loopscope::both(open, loopscope::bracket(open)));
}

#[cfg(feature = "stream")]
#[test]
fn async_types_are_send_sync_and_unpin() {
    use loopscope::{AsyncBracket, AsyncWithRelease};
    use std::future::Ready;

    type AsyncOpen = fn(u32) -> Ready<io::Result<u32>>;
    type AsyncClose = fn(u32) -> Ready<io::Result<()>>;
    type AsyncCloseWith = fn(u32, Outcome) -> Ready<io::Result<()>>;
    all::<AsyncBracket<AsyncOpen, u32>>();
    all::<AsyncWithRelease<AsyncOpen, u32, AsyncClose>>();
    all::<AsyncWithRelease<AsyncOpen, u32, WithOutcome<AsyncCloseWith>>>();
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_types_are_send_and_sync() {
    use loopscope::{ReleaseTimeout, ReleaseTimeoutError, SpawnOnCancel, TimedRelease};
    use std::future::Ready;

    type AsyncOpen = fn(u32) -> Ready<io::Result<u32>>;
    type AsyncClose = fn(u32) -> Ready<io::Result<()>>;
    all::<SpawnOnCancel<AsyncOpen, u32, AsyncClose>>();
    all::<ReleaseTimeout<AsyncClose>>();
    all::<SpawnOnCancel<AsyncOpen, u32, ReleaseTimeout<AsyncClose>>>();
    all::<ReleaseTimeoutError<io::Error>>();
    // A deadline holds a tokio timer, which is not `Unpin` (the adapters pin
    // every release they await), but it is `Send` and `Sync`.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TimedRelease<Ready<io::Result<()>>>>();
}

/// The tokio brackets say what they are in `Debug`, without asking anything of
/// the closures they hold.
#[cfg(feature = "tokio")]
#[test]
fn tokio_brackets_debug_their_names() {
    use std::time::Duration;

    let bracket = loopscope::async_bracket(async |id: u32| Ok::<_, io::Error>(id))
        .release(|_id: u32| std::future::ready(Ok::<_, io::Error>(())));
    let spawned = bracket.spawn_on_cancel();
    assert_eq!(format!("{spawned:?}"), "SpawnOnCancel { .. }");
    let timed = spawned.release_timeout(Duration::from_millis(250));
    assert_eq!(format!("{timed:?}"), "SpawnOnCancel { .. }");
}

#[cfg(feature = "testing")]
#[test]
fn testing_types_are_send_sync_and_unpin() {
    use loopscope::testing::{
        Call, Fault, Faults, FaultyAcquire, Indexed, Injected, InjectedFault, ReleaseMismatch,
        Step, Tracked, Tracker, YieldN,
    };

    all::<Tracker>();
    all::<Tracked>();
    all::<ReleaseMismatch>();
    all::<Faults>();
    all::<FaultyAcquire<Open>>();
    all::<Indexed<u32>>();
    all::<YieldN>();
    all::<Step>();
    all::<Fault>();
    all::<InjectedFault>();
    all::<Injected<io::Error>>();
    all::<Call>();
}

//! Inputs and drivers for the stream adapters' property tests that `stream::iter`
//! cannot stand in for, and a time limit for every case.
//!
//! - [`Stutter`]: an input that is `Pending` a given number of times before each
//!   item (and before its end), waking itself each time — the engine must wait
//!   for it, also when nothing is in flight.
//! - [`fed`] and [`drive_fed`]: an input fed through a `futures` channel as the
//!   run goes, by a feeder that takes turns with the adapter on a strict
//!   executor: the adapter is polled only when its waker was woken, so a lost
//!   wake-up is a stall, reported as such, not a hang.
//! - [`within_time_limit`]: runs a case on its own thread and fails it with a
//!   clear message when it does not end within [`time_limit`].
//!
//! Included by a test file with `#[path = "common/inputs.rs"]`, like `cases.rs`.

// Each test file that includes this module uses a different part of it.
#![allow(dead_code)]

use std::panic;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::task::{Context, Poll, Wake, Waker};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::stream::Stream;

// ---------------------------------------------------------------- time limit

// The limit is the watchdog's: a test file that includes this module includes
// `common/watchdog.rs` as `watchdog` too.
pub use crate::watchdog::time_limit;

/// Runs `case` on a thread of its own and returns what it returns; a panic of
/// the case resumes here. If the case has not ended within [`time_limit`], fails
/// at once with a message naming `what` — the hung thread is left behind (a
/// thread cannot be killed), and the process ends it when the tests end.
///
/// # Panics
///
/// When the case panics, or does not end in time.
#[track_caller]
pub fn within_time_limit<T: Send + 'static>(
    what: &str,
    case: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("case of {what}"))
        .spawn(move || {
            // A send fails only if the test has given up waiting.
            let _late = sender.send(case());
        })
        .expect("a thread for the case");
    let limit = time_limit();
    match receiver.recv_timeout(limit) {
        Ok(output) => {
            thread.join().expect("the case has returned");
            output
        }
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the case ended without sending its result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "{what}: the case did not end within {limit:?}: the adapter hangs \
             (Pending forever, or pulling an endless input)"
        ),
    }
}

// ---------------------------------------------------------------- a stuttering input

/// A stream over `items` that returns `Pending` `gaps[i]` times before its item
/// at position `i` (and `gaps[len]` times before its end; a missing gap is 0),
/// waking itself each time, as a socket that is not yet readable but soon will
/// be. The iterator is advanced only when the item is delivered, so an iterator
/// that counts its `next()` calls counts the items pulled.
#[derive(Debug)]
pub struct Stutter<I> {
    items: I,
    gaps: Vec<usize>,
    // The position of the next item.
    next: usize,
    // `Pending`s left before it, once it is being waited for.
    left: Option<usize>,
}

impl<I> Stutter<I> {
    pub fn new(items: I, gaps: Vec<usize>) -> Self {
        Self {
            items,
            gaps,
            next: 0,
            left: None,
        }
    }
}

impl<I: Iterator + Unpin> Stream for Stutter<I> {
    type Item = I::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        let this = self.get_mut();
        let gap = this.gaps.get(this.next).copied().unwrap_or(0);
        let left = this.left.get_or_insert(gap);
        if *left > 0 {
            *left -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.left = None;
        this.next += 1;
        Poll::Ready(this.items.next())
    }
}

// ---------------------------------------------------------------- a fed input

/// The sending side of a [`fed`] input: sends `total` items, the one at
/// position `i` after `gaps[i]` turns of the executor (or at once when the
/// adapter is idle: pending, and not woken), then closes the channel.
#[derive(Debug)]
pub struct Feeder {
    sender: Option<UnboundedSender<()>>,
    gaps: Vec<usize>,
    total: usize,
    sent: usize,
    // Turns left before the next send (or the close).
    countdown: usize,
}

/// A feeder of `total` items and the channel it feeds: the adapter's input
/// (each item `()`: map it to what the test needs, counting the items pulled).
pub fn fed(total: usize, gaps: Vec<usize>) -> (Feeder, UnboundedReceiver<()>) {
    let (sender, receiver) = unbounded();
    let countdown = gaps.first().copied().unwrap_or(0);
    let feeder = Feeder {
        sender: Some(sender),
        gaps,
        total,
        sent: 0,
        countdown,
    };
    (feeder, receiver)
}

/// What a feeder did on its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Sent an item or closed the channel.
    Fed,
    /// Counted down to its next send.
    Waited,
    /// Nothing left to do: every item sent, the channel closed.
    Done,
}

impl Feeder {
    /// How many items were sent so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    fn turn(&mut self, idle: bool) -> Turn {
        let Some(sender) = &self.sender else {
            return Turn::Done;
        };
        if !idle && self.countdown > 0 {
            self.countdown -= 1;
            return Turn::Waited;
        }
        if self.sent < self.total {
            // Fails only if the adapter dropped its input: then nobody counts.
            let _dropped = sender.unbounded_send(());
            self.sent += 1;
            self.countdown = self.gaps.get(self.sent).copied().unwrap_or(0);
        } else {
            // Dropping the sender closes the channel (and wakes the receiver).
            self.sender = None;
        }
        Turn::Fed
    }
}

/// A waker that sets a flag.
#[derive(Debug, Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The most turns a fed run may take.
const MAX_TURNS: usize = 200_000;

/// Runs `poll` (one poll of the adapter, or of a consumer draining it) to
/// `Ready` on a strict one-thread executor, taking turns with `feeder`: the
/// adapter is polled first, and then only when its waker was woken — by its own
/// items, or by the channel when the feeder sends or closes. When the adapter
/// is idle (pending, not woken) the feeder acts at once.
///
/// # Errors
///
/// A message when the adapter stalls — pending, not woken, and the feeder has
/// nothing left to send: its waker was lost — or takes more than a generous
/// number of turns.
pub fn drive_fed<T>(
    feeder: &mut Feeder,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, String> {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..MAX_TURNS {
        if flag.0.swap(false, Ordering::SeqCst)
            && let Poll::Ready(output) = poll(&mut cx)
        {
            return Ok(output);
        }
        let idle = !flag.0.load(Ordering::SeqCst);
        if feeder.turn(idle) == Turn::Done && idle {
            return Err(format!(
                "a lost wake-up: the adapter is pending and was not woken, and its input \
                 was fed all {} items and closed",
                feeder.total
            ));
        }
    }
    Err(format!(
        "not done after {MAX_TURNS} turns ({} of {} items fed)",
        feeder.sent, feeder.total
    ))
}

// ---------------------------------------------------------------- until it stalls

/// Polls `poll` on a strict one-thread executor — first, then only when its
/// waker was woken — until it is `Ready` (`Some`) or it stalls: `Pending` and
/// not woken (`None`), waiting for something that only another party could
/// wake (or for a lost wake-up).
///
/// # Panics
///
/// After a generous number of polls that were all woken (a busy loop).
pub fn run_until_stalled<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Option<T> {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..MAX_TURNS {
        if !flag.0.swap(false, Ordering::SeqCst) {
            return None;
        }
        if let Poll::Ready(output) = poll(&mut cx) {
            return Some(output);
        }
    }
    panic!("still woken after {MAX_TURNS} polls: a busy loop")
}

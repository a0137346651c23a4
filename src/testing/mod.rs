//! A kit to prove a scoped loop — yours as well as this crate's own adapters,
//! whose property tests use it:
//!
//! - [`Tracker`] counts resources: how many are live, the most that were live
//!   at once, and which were released, and how often;
//! - [`Faults`] plans faults by step ([`Step`]: acquire, use, release) and item
//!   position, and wraps your acquire and body so that those items fail (with an
//!   [`Injected`] error), panic (with an [`InjectedFault`] payload, see
//!   [`catch_injected`]) or — async — wait a number of polls first
//!   ([`yield_n`]); it records every call the adapter makes ([`Call`]);
//! - [`cancel_at_every_poll`] drops a future after every possible number of
//!   polls and checks what it left behind (with the `stream` feature,
//!   `cancel_stream_at_every_poll` does the same for a stream). The check sees
//!   what a drop released *synchronously*: the spawned adapters (feature
//!   `tokio`) release on a worker thread shortly after the drop, so for them
//!   wait for the releases before checking (see
//!   [Spawned adapters](cancel_at_every_poll#spawned-adapters));
//! - [`open_fds`] counts the process's open descriptors on Linux.
//!
//! Give the adapter a resource made by [`Tracker::acquire`] — alone, or beside
//! your real one — and after the loop assert what must hold: the peak never
//! exceeded one (or your limit), and every resource was released exactly once.
//!
//! ```
//! use std::convert::Infallible;
//! use loopscope::prelude::*;
//! use loopscope::testing::Tracker;
//!
//! let tracker = Tracker::new();
//! (0..100).for_each_scoped(
//!     |_item| Ok::<_, Infallible>(tracker.acquire()),
//!     |_resource| Ok::<_, Infallible>(()),
//! )?;
//! assert_eq!(tracker.peak(), 1);
//! assert_eq!(tracker.acquired().len(), 100);
//! tracker.assert_released_exactly_once();
//! # Ok::<(), ScopedError<Infallible, Infallible, Infallible>>(())
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod cancel;
mod faults;

pub use self::cancel::{cancel_at_every_poll, try_cancel_at_every_poll};
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub use self::cancel::{cancel_stream_at_every_poll, try_cancel_stream_at_every_poll};
pub use self::faults::{
    Call, Fault, Faults, FaultyAcquire, Indexed, Injected, InjectedFault, Step, YieldN,
    catch_injected, silence_injected_panics, yield_n,
};

/// Counts resources: how many are live now, the most that were live at once,
/// and which were acquired and released, by id.
///
/// A `Tracker` is a cheap handle (`Clone` shares the same counts) and is
/// `Send + Sync`, so it can be moved into closures and tasks.
///
/// # Examples
///
/// ```
/// use loopscope::testing::Tracker;
///
/// let tracker = Tracker::new();
/// let first = tracker.acquire();
/// let second = tracker.acquire();
/// assert_eq!((tracker.live(), tracker.peak()), (2, 2));
/// drop(first);
/// second.release();
/// assert_eq!((tracker.live(), tracker.peak()), (0, 2));
/// assert_eq!(tracker.released(), [0, 1]);
/// tracker.assert_released_exactly_once();
/// ```
#[derive(Clone, Default)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    live: usize,
    peak: usize,
    acquired: Vec<u64>,
    released: Vec<u64>,
}

impl Tracker {
    /// A tracker with nothing acquired yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// assert_eq!((tracker.live(), tracker.peak()), (0, 0));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Acquires a new resource, with the next id (0, 1, 2, … in acquisition order).
    /// It counts as live until it is dropped or [released](Tracked::release).
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// let resource = tracker.acquire();
    /// assert_eq!((resource.id(), tracker.live()), (0, 1));
    /// ```
    #[must_use = "a tracked resource is released as soon as it is dropped"]
    pub fn acquire(&self) -> Tracked {
        let mut state = self.lock();
        let id = state.acquired.len() as u64;
        state.acquired.push(id);
        state.live += 1;
        state.peak = state.peak.max(state.live);
        Tracked {
            id,
            tracker: self.clone(),
        }
    }

    /// How many resources are live now.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// let _held = tracker.acquire();
    /// assert_eq!(tracker.live(), 1);
    /// ```
    #[must_use]
    pub fn live(&self) -> usize {
        self.lock().live
    }

    /// The most resources that were ever live at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// drop((tracker.acquire(), tracker.acquire()));
    /// assert_eq!((tracker.live(), tracker.peak()), (0, 2));
    /// ```
    #[must_use]
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    /// The ids of every resource acquired, in acquisition order.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// drop(tracker.acquire());
    /// assert_eq!(tracker.acquired(), [0]);
    /// ```
    #[must_use]
    pub fn acquired(&self) -> Vec<u64> {
        self.lock().acquired.clone()
    }

    /// The ids of every release, in release order; an id released twice would
    /// appear twice.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// let (a, b) = (tracker.acquire(), tracker.acquire());
    /// drop(b);
    /// drop(a);
    /// assert_eq!(tracker.released(), [1, 0]);
    /// ```
    #[must_use]
    pub fn released(&self) -> Vec<u64> {
        self.lock().released.clone()
    }

    /// Checks that every acquired resource was released exactly once, and nothing
    /// else was released.
    ///
    /// # Errors
    ///
    /// A [`ReleaseMismatch`] that lists the ids never released and those released
    /// more than once.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// let leaked = tracker.acquire();
    /// let mismatch = tracker.check_released_exactly_once().unwrap_err();
    /// assert_eq!(mismatch.never_released, [0]);
    /// drop(leaked);
    /// assert!(tracker.check_released_exactly_once().is_ok());
    /// ```
    pub fn check_released_exactly_once(&self) -> Result<(), ReleaseMismatch> {
        let state = self.lock();
        let mut times = vec![0_usize; state.acquired.len()];
        for &id in &state.released {
            times[usize::try_from(id).expect("ids are indexes into `acquired`")] += 1;
        }
        let ids_released = |matches: fn(usize) -> bool| -> Vec<u64> {
            (0_u64..)
                .zip(&times)
                .filter(|&(_, &count)| matches(count))
                .map(|(id, _)| id)
                .collect()
        };
        let mismatch = ReleaseMismatch {
            never_released: ids_released(|count| count == 0),
            released_more_than_once: ids_released(|count| count > 1),
        };
        if mismatch.never_released.is_empty() && mismatch.released_more_than_once.is_empty() {
            Ok(())
        } else {
            Err(mismatch)
        }
    }

    /// Asserts that every acquired resource was released exactly once.
    ///
    /// # Panics
    ///
    /// When a resource is still live or was released more than once; the message
    /// lists their ids.
    ///
    /// # Examples
    ///
    /// ```should_panic
    /// let tracker = loopscope::testing::Tracker::new();
    /// std::mem::forget(tracker.acquire()); // leaked: never released
    /// tracker.assert_released_exactly_once();
    /// ```
    #[track_caller]
    pub fn assert_released_exactly_once(&self) {
        if let Err(mismatch) = self.check_released_exactly_once() {
            panic!("{mismatch}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a panic poisoned the lock: every
        // update is finished before the guard drops.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Tracker")
            .field("live", &state.live)
            .field("peak", &state.peak)
            .field("acquired", &state.acquired.len())
            .field("released", &state.released.len())
            .finish()
    }
}

/// A resource counted by a [`Tracker`]: live from [`Tracker::acquire`] until it
/// is dropped or [released](Tracked::release).
///
/// # Examples
///
/// ```
/// let tracker = loopscope::testing::Tracker::new();
/// let resource = tracker.acquire();
/// assert_eq!(resource.id(), 0);
/// drop(resource);
/// assert_eq!(tracker.live(), 0);
/// ```
#[derive(Debug)]
pub struct Tracked {
    id: u64,
    tracker: Tracker,
}

impl Tracked {
    /// The resource's id: its position in acquisition order.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// let (a, b) = (tracker.acquire(), tracker.acquire());
    /// assert_eq!((a.id(), b.id()), (0, 1));
    /// ```
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Releases the resource; the same as dropping it, spelled out for a
    /// [`bracket`](crate::bracket)'s release closure.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = loopscope::testing::Tracker::new();
    /// tracker.acquire().release();
    /// assert_eq!(tracker.released(), [0]);
    /// ```
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut state = self.tracker.lock();
        state.live -= 1;
        state.released.push(self.id);
    }
}

/// What [`Tracker::check_released_exactly_once`] found wrong.
///
/// # Examples
///
/// ```
/// let tracker = loopscope::testing::Tracker::new();
/// let _live = tracker.acquire();
/// let mismatch = tracker.check_released_exactly_once().unwrap_err();
/// assert_eq!(mismatch.to_string(), "resources never released: [0]; released more than once: []");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "resources never released: {never_released:?}; released more than once: {released_more_than_once:?}"
)]
#[non_exhaustive]
pub struct ReleaseMismatch {
    /// Ids acquired but not (yet) released.
    pub never_released: Vec<u64>,
    /// Ids released twice or more.
    pub released_more_than_once: Vec<u64>,
}

/// Counts the descriptors this process has open, from `/proc/self/fd` (Linux).
///
/// The descriptor that reading the directory itself needs is not counted.
///
/// # Errors
///
/// When `/proc/self/fd` cannot be read (no procfs mounted, or the process is
/// out of descriptors).
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use loopscope::testing::open_fds;
///
/// let before = open_fds()?;
/// let file = std::fs::File::open("/proc/self/stat")?;
/// assert_eq!(open_fds()?, before + 1);
/// drop(file);
/// assert_eq!(open_fds()?, before);
/// # Ok(())
/// # }
/// ```
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub fn open_fds() -> std::io::Result<usize> {
    let entries = std::fs::read_dir("/proc/self/fd")?.count();
    // One of the entries is the directory handle `read_dir` holds while counting.
    Ok(entries - 1)
}

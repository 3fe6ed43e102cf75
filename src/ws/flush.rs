//! A worker's flush tick: broadcast frames (`state`, `message`) leave at the next tick, not each
//! in a `send` of its own. Ticks are at least `EVERY` apart: on a quiet worker a broadcast goes
//! out at once (at the end of the turn that wrote it), on a busy one it waits at most `EVERY`
//! (and the timer's millisecond), so a socket that gets several broadcasts between two ticks
//! gets them in one `send`, and its own `ack` takes whatever is waiting along at once. A `send`
//! costs the kernel about as much for one frame as for ten, and sends are most of what an
//! acknowledged mutation costs the engine (`docs/benchmarks.md`).
//!
//! One task per worker, made the first time a broadcast waits on it; it sleeps while nothing
//! is due, and at each tick hands every socket due at it its turn (`Due::tick`). A socket is due
//! at most once per tick: it stays due until the tick comes, even if an answer sent its
//! broadcasts before.

use std::{
    cell::RefCell,
    future::poll_fn,
    mem,
    rc::Rc,
    task::{Poll, Waker},
    time::Duration,
};

use tokio::time::Instant;

/// The least time between two ticks of a worker: how long a broadcast waits at most for more to
/// go with it (the timer rounds up to its next millisecond).
pub(crate) const EVERY: Duration = Duration::from_millis(5);

/// What waits for a worker's tick: a socket whose writer sends its broadcasts then.
pub(crate) trait Due {
    /// The tick came.
    fn tick(&self);
}

/// The sockets due at the next tick, and the task that ticks.
#[derive(Default)]
struct Tick {
    due: Vec<Rc<dyn Due>>,
    /// The tick's task, while it waits for something to be due.
    task: Option<Waker>,
    /// The task is running: false once its runtime dropped it (a new runtime on this thread
    /// starts another).
    running: bool,
}

thread_local! {
    static TICK: RefCell<Option<Rc<RefCell<Tick>>>> = const { RefCell::new(None) };
}

/// Ticks `due` at this worker's next tick.
pub(crate) fn at_next_tick(due: Rc<dyn Due>) {
    TICK.with(|slot| {
        let mut slot = slot.borrow_mut();
        let tick = match slot.as_ref().filter(|tick| tick.borrow().running) {
            Some(tick) => tick.clone(),
            None => {
                let tick = Rc::new(RefCell::new(Tick {
                    running: true,
                    ..Tick::default()
                }));
                actix_rt::spawn(run(Running(tick.clone())));
                *slot = Some(tick.clone());
                tick
            }
        };
        let mut tick = tick.borrow_mut();
        tick.due.push(due);
        if let Some(task) = tick.task.take() {
            task.wake();
        }
    });
}

/// How many sockets are due at this worker's next tick.
#[cfg(test)]
pub(crate) fn due_now() -> usize {
    TICK.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(0, |tick| tick.borrow().due.len())
    })
}

/// The tick task's hold on its state: marks it stopped when the task is dropped, and ticks
/// what was still due (a socket stays due until its tick comes: none would ever come).
struct Running(Rc<RefCell<Tick>>);

impl Drop for Running {
    fn drop(&mut self) {
        let due = match self.0.try_borrow_mut() {
            Ok(mut tick) => {
                tick.running = false;
                mem::take(&mut tick.due)
            }
            Err(_) => return,
        };
        for due in due {
            due.tick();
        }
    }
}

async fn run(running: Running) {
    let tick = &running.0;
    let mut waking = Vec::new();
    let mut last: Option<Instant> = None;
    loop {
        poll_fn(|cx| {
            let mut tick = tick.borrow_mut();
            if tick.due.is_empty() {
                tick.task = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        // A quiet worker's tick is now; a busy one's waits for its time.
        if let Some(next) = last.map(|last| last + EVERY) {
            if next > Instant::now() {
                tokio::time::sleep_until(next).await;
            }
        }
        last = Some(Instant::now());
        mem::swap(&mut tick.borrow_mut().due, &mut waking);
        for due in waking.drain(..) {
            due.tick();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Wake,
    };

    use super::*;

    /// A waker (or a socket due at a tick) that counts its wake-ups.
    #[derive(Default)]
    pub(crate) struct Count(pub(crate) AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Due for Count {
        fn tick(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits (at most 10 s) until `count` was woken `n` times.
    pub(crate) async fn until(count: &Count, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count.0.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "woken {} times in 10 s, not {n}",
                count.0.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[actix_rt::test]
    async fn writers_are_woken_at_the_tick_and_again_at_later_ones() {
        let (a, b) = (Rc::new(Count::default()), Rc::new(Count::default()));
        at_next_tick(a.clone());
        at_next_tick(b.clone());
        assert_eq!(a.0.load(Ordering::SeqCst), 0, "not at once");
        until(&a, 1).await;
        until(&b, 1).await;
        // The task slept since; a later frame wakes it again.
        at_next_tick(a.clone());
        until(&a, 2).await;
        assert_eq!(b.0.load(Ordering::SeqCst), 1, "each writer once per wait");
    }

    #[actix_rt::test]
    async fn a_quiet_workers_tick_is_at_once_and_a_busy_ones_waits_its_time() {
        tokio::time::pause();
        let start = Instant::now();
        let (a, b) = (Rc::new(Count::default()), Rc::new(Count::default()));
        at_next_tick(a.clone());
        // The clock stands still while a task can run: the tick runs without sleeping.
        for _ in 0..100 {
            if a.0.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(a.0.load(Ordering::SeqCst), 1, "the first tick is at once");
        assert_eq!(Instant::now(), start);
        // Right after a tick, the next waits for its time, and takes every writer due by then.
        at_next_tick(b.clone());
        at_next_tick(a.clone());
        until(&b, 1).await;
        // (`until` looks every millisecond, which the timer rounds up: it sees it a little late.)
        let waited = Instant::now() - start;
        assert!(
            waited >= EVERY && waited <= EVERY * 2,
            "the second tick {waited:?} after the first"
        );
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn what_is_due_when_the_tick_stops_is_ticked_then() {
        let late = Rc::new(Count::default());
        {
            let system = actix_rt::System::new();
            system.block_on(async {
                let first = Rc::new(Count::default());
                at_next_tick(first.clone());
                until(&first, 1).await;
                // The next tick is `EVERY` away; the runtime ends before it.
                at_next_tick(late.clone());
            });
            assert_eq!(late.0.load(Ordering::SeqCst), 0, "no tick yet");
        }
        assert_eq!(
            late.0.load(Ordering::SeqCst),
            1,
            "ticked as the tick stopped"
        );
    }

    #[test]
    fn a_new_runtime_on_the_thread_gets_a_tick_of_its_own() {
        for _ in 0..2 {
            actix_rt::System::new().block_on(async {
                let count = Rc::new(Count::default());
                at_next_tick(count.clone());
                until(&count, 1).await;
            });
        }
    }
}

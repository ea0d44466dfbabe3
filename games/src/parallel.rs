//! Running work on plain threads under a memory budget.
//!
//! Making and applying deltas runs one job per file, each holding a few copies of its file
//! in memory. [`run_parallel`] spreads jobs over threads and [`Budget`] keeps the jobs
//! running at once within a memory limit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Caps the memory of work running at once: each job asks for its estimate and waits until
/// it fits. A job larger than the whole budget runs alone.
pub(crate) struct Budget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

pub(crate) struct BudgetGuard<'a> {
    budget: &'a Budget,
    amount: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget {
            limit: limit.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn acquire(&self, want: u64) -> BudgetGuard<'_> {
        let amount = want.min(self.limit);
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while *used + amount > self.limit {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *used += amount;
        BudgetGuard {
            budget: self,
            amount,
        }
    }
}

impl Drop for BudgetGuard<'_> {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *used -= self.amount;
        self.budget.freed.notify_all();
    }
}

/// Runs `work` on every item on `threads` plain threads (0: one per CPU), in order of the
/// items, and returns the results in item order, or the error of the first failing item.
///
/// Plain threads rather than rayon's pool, because a job may block on a [`Budget`] while
/// holding nothing, and rayon would let a blocked worker's queue wait behind it; the file
/// deltas themselves still use rayon inside.
pub(crate) fn run_parallel<T, R, E>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
    .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, E>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let item_idx = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(item_idx) else {
                        break;
                    };
                    let result = work(item);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|poison| poison.into_inner())[item_idx] =
                        Some(result);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for result in results
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
    {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(error)) => return Err(error),
            // Only reached after a failure stopped the work; the error comes later in order.
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_parallel_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..100).collect();
        let doubled = run_parallel(&items, 4, |n| Ok::<_, ()>(n * 2)).unwrap();
        assert_eq!(doubled, (0..100).map(|n| n * 2).collect::<Vec<_>>());
        let failed = run_parallel(&items, 1, |n| if *n >= 10 { Err(*n) } else { Ok(*n) });
        assert_eq!(failed, Err(10));
    }
}

//! One computation per key at a time: a caller asking for a key that is being computed
//! waits for that result instead of repeating the work, so a burst of timeline requests
//! for one key frame (a hover sweep, several tabs) decodes it once. Blocking: for
//! `spawn_blocking` threads.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// The computations running now, by key. Each slot's mutex is held by the caller
/// computing it until its result is in, so the others block on it.
pub struct Flights<K, V> {
    running: Mutex<HashMap<K, Arc<Mutex<Option<V>>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            running: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the key out of the running map when its computation ends, also by a panic.
struct Leave<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    key: &'a K,
}

impl<K: Eq + Hash, V> Drop for Leave<'_, K, V> {
    fn drop(&mut self) {
        lock(&self.flights.running).remove(self.key);
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// `make()`'s value for `key`, or the value of the same computation another caller
    /// has running. True when it was shared (not made by this call). When the running
    /// one fails (or panics), its waiters each run `make` themselves: errors are not
    /// shared, and are rare.
    pub fn run<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<(V, bool), E> {
        let mut running = lock(&self.running);
        if let Some(slot) = running.get(&key).cloned() {
            drop(running);
            let done = lock(&slot).clone();
            return match done {
                Some(v) => Ok((v, true)),
                None => make().map(|v| (v, false)),
            };
        }
        let slot = Arc::new(Mutex::new(None));
        // Locked before it is visible, so no waiter gets in first.
        let mut out = lock(&slot);
        running.insert(key.clone(), slot.clone());
        drop(running);
        // Dropped before `out`: the key leaves the map before its waiters wake.
        let _leave = Leave {
            flights: self,
            key: &key,
        };
        let v = make()?;
        *out = Some(v.clone());
        Ok((v, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    #[test]
    fn a_burst_for_one_key_makes_it_once_and_other_keys_apart() {
        let flights = Flights::<u32, u32>::default();
        let made = AtomicUsize::new(0);
        let barrier = Barrier::new(8);
        let shared: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let (v, shared) = flights
                            .run(7, || {
                                made.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(200));
                                Ok::<_, ()>(49)
                            })
                            .unwrap();
                        assert_eq!(v, 49);
                        shared
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(shared.iter().filter(|s| !**s).count(), 1);
        assert!(lock(&flights.running).is_empty());
        // Later calls (nothing running) make it again: the caller's cache is the cache.
        assert_eq!(flights.run(7, || Ok::<_, ()>(50)).unwrap(), (50, false));
    }

    #[test]
    fn a_failure_is_not_shared_and_a_panic_leaves_no_key_behind() {
        let flights = Flights::<u32, u32>::default();
        assert_eq!(flights.run(1, || Err::<u32, _>("broken")), Err("broken"));
        assert!(lock(&flights.running).is_empty());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            flights.run(1, || -> Result<u32, ()> { panic!("decoder") })
        }));
        assert!(r.is_err());
        assert!(lock(&flights.running).is_empty());
        assert_eq!(flights.run(1, || Ok::<_, ()>(2)).unwrap(), (2, false));
    }
}

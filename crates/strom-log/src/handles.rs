//! Bounded open resources: the file descriptors of segment files and the memory maps of
//! indexes are opened on demand and closed again when the process holds too many.
//!
//! A `Slot` holds one resource or nothing; `Slot::get` opens it when empty. Every open slot
//! is counted in its `Handles` pool, which closes the least recently used ones (the CLOCK
//! approximation: a slot used since the hand last passed gets a second chance) once more
//! than its limit are open. Users hold an `Arc` of the resource while they use it, so a slot
//! closed meanwhile only drops the pool's reference: a read or a sendfile in flight keeps
//! its descriptor, and a mapping is unmapped only after its last reader is done.
//!
//! Running out (EMFILE, ENFILE, or ENOMEM from mmap) shrinks the pool and retries once;
//! if that fails too, the caller gets the error, which names what ran out
//! (`is_exhaustion`): it fails the one operation, never the log dir.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};

/// Whether `e` means the process (or the system) ran out of file descriptors.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether `e`, from opening or mapping a file, means the process ran out of descriptors or
/// address-space mappings, not that the disk failed.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}

/// Something a pool can close.
trait Closable: Send + Sync {
    /// Whether it was used since the last call (and clears that).
    fn take_used(&self) -> bool;
    /// Whether it is open now.
    fn is_open_now(&self) -> bool;
    /// Closes it; false if it was already closed.
    fn close(&self) -> bool;
}

/// A pool of open resources of one kind, bounded by `limit`.
#[derive(Debug)]
pub struct Handles {
    name: &'static str,
    limit: AtomicUsize,
    open: AtomicUsize,
    /// Times the system refused a resource (the first and every 1000th are logged).
    refusals: AtomicUsize,
    /// Open slots in the order the CLOCK hand visits them; closed or dropped ones are
    /// skipped (and removed) when reached.
    ring: Mutex<VecDeque<Weak<dyn Closable>>>,
}

impl std::fmt::Debug for dyn Closable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Closable")
    }
}

impl Handles {
    pub fn new(name: &'static str, limit: usize) -> Arc<Handles> {
        Arc::new(Handles {
            name,
            limit: AtomicUsize::new(limit.max(1)),
            open: AtomicUsize::new(0),
            refusals: AtomicUsize::new(0),
            ring: Mutex::new(VecDeque::new()),
        })
    }

    /// The process's pool of segment file descriptors: half of the open-file limit
    /// (`RLIMIT_NOFILE`, raised to its hard limit first), the other half left to
    /// connections and short-lived files.
    pub fn files() -> Arc<Handles> {
        static FILES: OnceLock<Arc<Handles>> = OnceLock::new();
        Arc::clone(FILES.get_or_init(|| Handles::new("open files", open_files_limit() / 2)))
    }

    /// The process's pool of index memory maps: half of `vm.max_map_count`.
    pub fn maps() -> Arc<Handles> {
        static MAPS: OnceLock<Arc<Handles>> = OnceLock::new();
        Arc::clone(MAPS.get_or_init(|| Handles::new("memory maps", max_map_count() / 2)))
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.shrink_to(limit.max(1));
    }

    /// Resources open now.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<dyn Closable>>> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn opened(&self, slot: Weak<dyn Closable>) {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        {
            let mut ring = self.ring();
            ring.push_back(slot);
            // Slots dropped while open leave dead entries; keep them from piling up.
            if ring.len() > 2 * open + 64 {
                ring.retain(|w| w.strong_count() > 0);
            }
        }
        let limit = self.limit();
        if open > limit {
            self.shrink_to(limit);
        }
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Closes least recently used resources until at most `target` are open, or every open
    /// one was in use twice over.
    fn shrink_to(&self, target: usize) {
        let mut ring = self.ring();
        let mut chances = 2 * ring.len();
        while self.open_count() > target && chances > 0 {
            chances -= 1;
            let Some(weak) = ring.pop_front() else { break };
            // Dropped or closed meanwhile: its entry goes (an open slot has one).
            let Some(slot) = weak.upgrade().filter(|s| s.is_open_now()) else {
                continue;
            };
            if slot.take_used() {
                ring.push_back(weak);
            } else {
                // `close` calls `closed`, which does not take the ring lock.
                slot.close();
            }
        }
    }

    /// After the system refused a descriptor elsewhere (an accept): as `exhausted`.
    pub fn relieve(&self) {
        self.exhausted();
    }

    /// After the system refused a new resource: closes a tenth of the open ones (at least
    /// one) and lowers the limit to what is left, so the pool stays below what the process
    /// can really have.
    fn exhausted(&self) {
        let open = self.open_count();
        let target = open - open / 10 - usize::from(open > 0 && open < 10);
        let refusals = self.refusals.fetch_add(1, Ordering::Relaxed);
        if refusals.is_multiple_of(1000) {
            tracing::warn!(
                pool = self.name,
                open,
                limit = target,
                refusals = refusals + 1,
                "out of {}: closing idle ones",
                self.name
            );
        }
        self.limit.store(target.max(1), Ordering::Relaxed);
        self.shrink_to(target);
    }
}

/// Opens `path` to read and write, creating it if missing, as `transient` opens.
pub(crate) fn open_or_create(path: &std::path::Path) -> io::Result<std::fs::File> {
    transient(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    })
}

/// Runs `open` (of a short-lived descriptor: a directory to sync, a checkpoint, an index
/// to trim); if the process is out of descriptors, closes idle segment files and tries once
/// more.
pub fn transient<T>(open: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match open() {
        Err(e) if is_out_of_descriptors(&e) => {
            Handles::files().exhausted();
            open()
        }
        other => other,
    }
}

/// Raises the soft open-file limit to the hard one and returns it.
pub fn open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(1 << 24)
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530)
}

/// One resource, open or not.
pub(crate) struct Slot<T: Send + Sync + 'static> {
    pool: Arc<Handles>,
    value: RwLock<Option<Arc<T>>>,
    used: AtomicBool,
    /// Never closed by the pool (the active segment of a log that must not fail for want
    /// of a descriptor, such as the metadata log).
    pinned: AtomicBool,
}

impl<T: Send + Sync + 'static> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("pool", &self.pool.name)
            .field("open", &self.is_open())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Slot<T> {
    pub fn new(pool: &Arc<Handles>) -> Arc<Self> {
        Arc::new(Slot {
            pool: Arc::clone(pool),
            value: RwLock::new(None),
            used: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
        })
    }

    /// A slot holding `value`, already open.
    pub fn with(pool: &Arc<Handles>, value: T) -> Arc<Self> {
        let slot = Self::new(pool);
        *slot.value.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(value));
        slot.register();
        slot
    }

    fn register(self: &Arc<Self>) {
        let weak: Weak<dyn Closable> = Arc::downgrade(self) as Weak<dyn Closable>;
        self.pool.opened(weak);
    }

    pub fn is_open(&self) -> bool {
        self.value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The resource if it is open, without opening it.
    pub fn peek(&self) -> Option<Arc<T>> {
        let v = self.value.read().unwrap_or_else(PoisonError::into_inner);
        v.clone()
    }

    /// The resource, opened with `open` if it is not; an exhausted system shrinks the pool
    /// and `open` is tried once more.
    pub fn get(self: &Arc<Self>, open: impl Fn() -> io::Result<T>) -> io::Result<Arc<T>> {
        self.used.store(true, Ordering::Relaxed);
        if let Some(v) = self.peek() {
            return Ok(v);
        }
        let mut guard = self.value.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = guard.as_ref() {
            return Ok(Arc::clone(v));
        }
        let value = match open() {
            Err(e) if is_exhaustion(&e) => {
                drop(guard);
                self.pool.exhausted();
                guard = self.value.write().unwrap_or_else(PoisonError::into_inner);
                if let Some(v) = guard.as_ref() {
                    return Ok(Arc::clone(v));
                }
                open()?
            }
            other => other?,
        };
        let value = Arc::new(value);
        *guard = Some(Arc::clone(&value));
        drop(guard);
        self.register();
        Ok(value)
    }

    pub fn set_pinned(&self, pinned: bool) {
        self.pinned.store(pinned, Ordering::Relaxed);
    }

    /// Closes the resource now (its users keep theirs until they drop them).
    pub fn close_now(&self) {
        Closable::close(self);
    }
}

impl<T: Send + Sync + 'static> Closable for Slot<T> {
    fn take_used(&self) -> bool {
        self.used.swap(false, Ordering::Relaxed) || self.pinned.load(Ordering::Relaxed)
    }

    fn is_open_now(&self) -> bool {
        self.is_open()
    }

    fn close(&self) -> bool {
        let was = self
            .value
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if was.is_some() {
            self.pool.closed();
        }
        was.is_some()
    }
}

impl<T: Send + Sync + 'static> Drop for Slot<T> {
    fn drop(&mut self) {
        Closable::close(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_closes_the_least_recently_used_beyond_its_limit() {
        let pool = Handles::new("test", 3);
        let slots: Vec<_> = (0..5).map(|_| Slot::<u32>::new(&pool)).collect();
        for (i, s) in slots.iter().enumerate() {
            s.get(|| Ok(i as u32)).unwrap();
        }
        assert_eq!(pool.open_count(), 3);
        assert!(slots[4].is_open() && slots[3].is_open());
        // A resource in use survives its slot's closing.
        let held = slots[4].get(|| Ok(99)).unwrap();
        slots[4].close_now();
        assert_eq!(*held, 4);
        assert_eq!(pool.open_count(), 2);
        // Reopened on demand; dropped slots are no longer counted.
        assert_eq!(*slots[0].get(|| Ok(7)).unwrap(), 7);
        drop(slots);
        assert_eq!(pool.open_count(), 0);
    }

    #[test]
    fn exhaustion_shrinks_the_pool_and_retries_once() {
        let pool = Handles::new("test", 100);
        let slots: Vec<_> = (0..20).map(|_| Slot::<u32>::new(&pool)).collect();
        for s in &slots {
            s.get(|| Ok(1)).unwrap();
        }
        let tries = AtomicUsize::new(0);
        let emfile = || {
            if tries.fetch_add(1, Ordering::Relaxed) == 0 {
                Err(io::Error::from_raw_os_error(libc::EMFILE))
            } else {
                Ok(2)
            }
        };
        let extra = Slot::<u32>::new(&pool);
        assert_eq!(*extra.get(emfile).unwrap(), 2);
        assert!(pool.limit() < 20, "limit lowered to {}", pool.limit());
        assert!(pool.open_count() <= pool.limit());
        let always = || Err(io::Error::from_raw_os_error(libc::ENFILE));
        let e = Slot::<u32>::new(&pool).get(always).unwrap_err();
        assert!(is_exhaustion(&e));
    }
}

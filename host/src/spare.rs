//! Spare instances: fresh instances of a plugin made ahead of the steps that
//! take them ([`ConcurrencyLimits::spare_instances`]). A spare was
//! instantiated and has run no call: a step that takes one starts on the
//! same pristine state as on an instance made for it, without waiting for
//! the instantiation (about 0.45 ms for a Python component, whose function
//! table wasmtime fills on every instantiation; BENCHMARKS.md "Plugins side
//! by side").
//!
//! [`ConcurrencyLimits::spare_instances`]: crate::ConcurrencyLimits::spare_instances

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use crate::bindings::Invoke;
use crate::state::StepState;

/// How many spares the host may hold at once (each holds pool slots).
pub(crate) struct SpareBudget {
    cap: usize,
    alive: AtomicUsize,
}

impl SpareBudget {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            alive: AtomicUsize::new(0),
        })
    }

    /// Whether the host keeps spares at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// A place for one more spare, unless the host holds its cap already.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Ticket> {
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |alive| {
                (alive < self.cap).then_some(alive + 1)
            })
            .ok()
            .map(|_| Ticket(self.clone()))
    }
}

/// One spare's place in the budget, given back when the spare is dropped
/// or taken.
pub(crate) struct Ticket(Arc<SpareBudget>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An instantiated instance that has run no call, in its own store.
pub(crate) struct Spare {
    store: Store<StepState>,
    invoke: Invoke,
    /// The memory cap it was instantiated under.
    memory_bytes: usize,
    _ticket: Ticket,
}

impl Spare {
    pub(crate) fn new(
        store: Store<StepState>,
        invoke: Invoke,
        memory_bytes: usize,
        ticket: Ticket,
    ) -> Self {
        Self {
            store,
            invoke,
            memory_bytes,
            _ticket: ticket,
        }
    }

    /// The store, to be given the step's state, and the `invoke` export.
    pub(crate) fn into_parts(self) -> (Store<StepState>, Invoke) {
        (self.store, self.invoke)
    }
}

/// A plugin's spare, if one is ready.
#[derive(Default)]
pub(crate) struct SpareSlot(Mutex<Option<Spare>>);

impl SpareSlot {
    /// The spare, if one is ready and was instantiated under a memory cap no
    /// larger than `memory_bytes` (a step with a smaller cap instantiates
    /// its own instance, which that cap checks).
    pub(crate) fn take(&self, memory_bytes: usize) -> Option<Spare> {
        let mut slot = self.0.lock().expect("spare slot poisoned");
        slot.take_if(|spare| spare.memory_bytes <= memory_bytes)
    }

    /// Whether no spare is ready.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().expect("spare slot poisoned").is_none()
    }

    /// Keeps `spare` unless one is ready already (then `spare` is dropped).
    pub(crate) fn put(&self, spare: Spare) {
        let mut slot = self.0.lock().expect("spare slot poisoned");
        if slot.is_none() {
            *slot = Some(spare);
        }
    }
}

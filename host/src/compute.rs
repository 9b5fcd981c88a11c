//! CPU sharing between tenants.
//!
//! A running plugin yields to the executor at every epoch tick. Yielding
//! alone puts a busy step back at the end of the executor's queue, so a
//! tenant with many running steps fills that queue and another tenant's step
//! waits behind all of them. Here a step runs guest code only while it holds
//! one of its tenant's compute slots: it takes one before the instance starts
//! and again after each outbound call, gives it back while it waits on the
//! network, and after a quantum of ticks gives it back and queues for one
//! again (first come, first served) if its tenant's other steps wait. A
//! tenant has as many slots as the host has workers, so however many steps
//! it runs, at most that many are ready to run at once: another tenant's step
//! waits about one tick per busy tenant, not one tick per busy step.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, UpdateDeadline};

/// One tenant's compute slots, shared by its steps.
#[derive(Clone)]
pub(crate) struct ComputeShare {
    slots: Arc<Semaphore>,
}

impl ComputeShare {
    /// A share of `slots` steps running guest code at once (at least one).
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// A step's handle on the share, holding no slot yet.
    pub(crate) fn step(&self) -> ComputeSlot {
        ComputeSlot {
            share: self.slots.clone(),
            held: Arc::default(),
        }
    }
}

/// One step's use of its tenant's share: the slot it holds, if any.
#[derive(Clone)]
pub(crate) struct ComputeSlot {
    share: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl ComputeSlot {
    /// Waits for a slot and holds it (a no-op if one is held).
    pub(crate) async fn take(&self) {
        if self.held.lock().expect("slot lock poisoned").is_some() {
            return;
        }
        let permit = self
            .share
            .clone()
            .acquire_owned()
            .await
            .expect("the compute semaphore is never closed");
        *self.held.lock().expect("slot lock poisoned") = Some(permit);
    }

    /// Gives the slot back, if one is held.
    pub(crate) fn release(&self) {
        self.held.lock().expect("slot lock poisoned").take();
    }

    /// Makes the store yield to the executor at every epoch tick, and give
    /// its slot back and queue for one again once it has run guest code for
    /// [`QUANTUM_TICKS`] ticks while every slot of the share is taken.
    pub(crate) fn install<T>(&self, store: &mut Store<T>) {
        let slot = self.clone();
        let mut ticks = 0u32;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks += 1;
            if ticks < QUANTUM_TICKS || slot.share.available_permits() > 0 {
                return Ok(UpdateDeadline::Yield(1));
            }
            ticks = 0;
            slot.release();
            let slot = slot.clone();
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move { slot.take().await }),
            ))
        });
    }
}

/// Epoch ticks a step runs guest code before it gives its compute slot to a
/// waiting step of the same tenant (20 × 5 ms = 100 ms): long enough that
/// the hand-offs cost nothing measurable, short enough that one long busy
/// step does not hold up its tenant's other steps.
pub(crate) const QUANTUM_TICKS: u32 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn held(slot: &ComputeSlot) -> bool {
        slot.held.lock().unwrap().is_some()
    }

    #[tokio::test]
    async fn steps_take_turns_in_arrival_order() {
        let share = ComputeShare::new(1);
        let (first, second, third) = (share.step(), share.step(), share.step());
        first.take().await;
        first.take().await;
        assert!(held(&first), "taking twice holds the one slot");
        let waiting = |slot: &ComputeSlot| {
            let slot = slot.clone();
            tokio::spawn(async move { slot.take().await })
        };
        let (second_waits, third_waits) = (waiting(&second), waiting(&third));
        tokio::task::yield_now().await;
        assert!(
            !second_waits.is_finished() && !third_waits.is_finished(),
            "one slot, held by the first"
        );
        first.release();
        second_waits.await.unwrap();
        assert!(
            held(&second) && !third_waits.is_finished(),
            "the slot went to the earlier waiter"
        );
        second.release();
        third_waits.await.unwrap();
        assert!(held(&third));
    }
}

//! Admission of steps: caps on the steps running at once, overall, per tenant
//! and per plugin, with a short bounded wait. A step that cannot be admitted
//! ends at once with `max-connection` instead of hanging, and one tenant's
//! flood waits on that tenant's own cap, not on everyone's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::compute::ComputeShare;

/// The host-wide concurrency limits. Every field has a default; change them
/// with [`crate::HostBuilder::concurrency`].
#[derive(Debug, Clone)]
pub struct ConcurrencyLimits {
    /// Steps running at once in the whole host (default 256).
    pub max_steps: usize,
    /// Steps of one tenant running at once (default 64).
    pub max_steps_per_tenant: usize,
    /// Steps of one plugin running at once (default 128).
    pub max_steps_per_plugin: usize,
    /// Steps of one tenant waiting for a slot (default 64); past it a step is
    /// refused at once.
    pub max_queued_per_tenant: usize,
    /// How long a step waits for a slot before it is refused (default 2 s).
    pub max_wait: Duration,
    /// Steps of one tenant running guest code at once (default: the
    /// machine's CPU count). A step waiting on the network holds no slot;
    /// more busy steps take turns every 20 epoch ticks, so another tenant's
    /// step waits about one tick per busy tenant (see `compute.rs`).
    pub compute_slots_per_tenant: usize,
    /// Fresh instances kept ready ahead of the steps that take them, in the
    /// whole host, at most one per plugin (default 0). A spare is
    /// instantiated and has run no call, so a step on it starts from the
    /// same pristine state, minus the wait for instantiating: worth it for
    /// components that instantiate slowly (a Python component, ~0.45 ms).
    /// Each spare holds instance pool slots (the pool grows by this many)
    /// and its instance's memory.
    pub spare_instances: usize,
}

impl Default for ConcurrencyLimits {
    fn default() -> Self {
        Self {
            max_steps: 256,
            max_steps_per_tenant: 64,
            max_steps_per_plugin: 128,
            max_queued_per_tenant: 64,
            max_wait: Duration::from_secs(2),
            compute_slots_per_tenant: std::thread::available_parallelism().map_or(2, |n| n.get()),
            spare_instances: 0,
        }
    }
}

/// A tenant's running-steps cap, its count of waiting steps and its compute slots.
struct TenantGate {
    running: Arc<Semaphore>,
    queued: AtomicUsize,
    compute: ComputeShare,
}

/// Hands out step permits.
pub(crate) struct Admission {
    limits: ConcurrencyLimits,
    global: Arc<Semaphore>,
    tenants: Mutex<HashMap<String, Arc<TenantGate>>>,
    plugins: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Held while a step runs; releases its slots when dropped.
pub(crate) struct Permit {
    _slots: [OwnedSemaphorePermit; 3],
    /// The tenant's compute slots, which the step's busy stretches take turns on.
    pub(crate) compute: ComputeShare,
}

impl Admission {
    pub(crate) fn new(limits: ConcurrencyLimits) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_steps)),
            limits,
            tenants: Mutex::new(HashMap::new()),
            plugins: Mutex::new(HashMap::new()),
        }
    }

    /// How many steps hold a host-wide slot now.
    pub(crate) fn running(&self) -> usize {
        self.limits
            .max_steps
            .saturating_sub(self.global.available_permits())
    }

    /// Admits a step of `tenant` running `plugin`, waiting at most the
    /// configured time; `Err` says which limit refused it.
    pub(crate) async fn admit(&self, tenant: &str, plugin: &str) -> Result<Permit, String> {
        let gate = {
            let mut tenants = self.tenants.lock().expect("admission lock poisoned");
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| {
                    Arc::new(TenantGate {
                        running: Arc::new(Semaphore::new(self.limits.max_steps_per_tenant)),
                        queued: AtomicUsize::new(0),
                        compute: ComputeShare::new(self.limits.compute_slots_per_tenant),
                    })
                })
                .clone()
        };
        let plugin_slots = {
            let mut plugins = self.plugins.lock().expect("admission lock poisoned");
            plugins
                .entry(plugin.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_steps_per_plugin)))
                .clone()
        };
        let slots = [&gate.running, &plugin_slots, &self.global];
        if let (Ok(t), Ok(p), Ok(g)) = (
            slots[0].clone().try_acquire_owned(),
            slots[1].clone().try_acquire_owned(),
            slots[2].clone().try_acquire_owned(),
        ) {
            return Ok(Permit {
                _slots: [t, p, g],
                compute: gate.compute.clone(),
            });
        }
        if gate.queued.fetch_add(1, Ordering::SeqCst) >= self.limits.max_queued_per_tenant {
            gate.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(format!(
                "tenant `{tenant}` already has {} steps waiting for a slot",
                self.limits.max_queued_per_tenant
            ));
        }
        // The tenant's own slot first: a flooding tenant queues on its own
        // cap without holding plugin or host slots meanwhile.
        let waited = tokio::time::timeout(self.limits.max_wait, async {
            let t = gate
                .running
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            let p = plugin_slots
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            let g = self
                .global
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            Permit {
                _slots: [t, p, g],
                compute: gate.compute.clone(),
            }
        })
        .await;
        gate.queued.fetch_sub(1, Ordering::SeqCst);
        waited.map_err(|_| {
            format!(
                "no step slot became free within {:?} (tenant, plugin or host concurrency limit)",
                self.limits.max_wait
            )
        })
    }
}

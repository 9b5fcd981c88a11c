//! The wasmtime engine: pooling allocator, epoch interruption and the on-disk
//! cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;

/// How often the epoch advances; a running plugin yields to the executor at
/// each tick, which is what lets the step deadline interrupt a busy loop.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Pool slots beyond the step limit, for plugins describing themselves at load time.
const LOAD_SLOTS: u32 = 16;

/// Bytes of a linear memory kept mapped when its slot is freed, and reset in
/// place. With the kernel's `PAGEMAP_SCAN` (Linux 6.7+) only the pages the
/// step wrote are restored, so a fresh instance per step costs neither the
/// `madvise` (and TLB shootdown) nor the page faults of touching them again.
const MEMORY_KEEP_RESIDENT_SCANNED: usize = 1 << 20;

/// The same without `PAGEMAP_SCAN`, where the kept bytes are all reset with a
/// `memset` each time: a page or so, what a small plugin writes first.
const MEMORY_KEEP_RESIDENT_MEMSET: usize = 64 << 10;

/// Bytes of a table kept mapped when its slot is freed (as for memories).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// The instance pool's size per kind of slot: room for `max_steps` steps
/// at once plus [`LOAD_SLOTS`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    component_instances: u32,
    core_instances: u32,
    memories: u32,
    tables: u32,
    stacks: u32,
}

impl Pool {
    /// The pool for `max_steps` steps running at once.
    pub(crate) fn for_steps(max_steps: usize) -> Self {
        let instances = u32::try_from(max_steps)
            .unwrap_or(u32::MAX / 8)
            .saturating_add(LOAD_SLOTS);
        Self {
            component_instances: instances,
            core_instances: instances * 4,
            memories: instances * 2,
            tables: instances * 4,
            stacks: instances,
        }
    }

    /// The slots in use now in `engine`'s pool (built from this `Pool`).
    pub(crate) fn usage(&self, engine: &Engine) -> PoolUsage {
        let live = engine.pooling_allocator_metrics();
        let slots =
            |capacity: u32, in_use: &dyn Fn(&wasmtime::PoolingAllocatorMetrics) -> u64| PoolSlots {
                in_use: live.as_ref().map_or(0, in_use),
                capacity: u64::from(capacity),
            };
        PoolUsage {
            component_instances: slots(self.component_instances, &|m| m.component_instances()),
            core_instances: slots(self.core_instances, &|m| m.core_instances()),
            memories: slots(self.memories, &|m| m.memories() as u64),
            tables: slots(self.tables, &|m| m.tables() as u64),
            stacks: slots(self.stacks, &|m| m.stacks() as u64),
        }
    }
}

/// Slots of one kind in the instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSlots {
    /// Allocated now.
    pub in_use: u64,
    /// How many there are.
    pub capacity: u64,
}

/// The instance pool's slots by kind ([`Host::pool_usage`]). A step holds
/// one component instance and one stack while it runs, and as many core
/// instances, memories and tables as its component has; loading a plugin
/// holds them briefly too.
///
/// [`Host::pool_usage`]: crate::Host::pool_usage
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Component instances.
    pub component_instances: PoolSlots,
    /// Core module instances.
    pub core_instances: PoolSlots,
    /// Linear memories.
    pub memories: PoolSlots,
    /// Tables.
    pub tables: PoolSlots,
    /// Stacks for async calls into plugins.
    pub stacks: PoolSlots,
}

/// Builds the engine for these limits, with a pool slot for each step that
/// may run at once. `epochs`: compile epoch checks into plugins (always, but
/// for the benchmark that measures what they cost).
pub(crate) fn build_engine(
    limits: &Limits,
    max_steps: usize,
    epochs: bool,
) -> wasmtime::Result<Engine> {
    let sizes = Pool::for_steps(max_steps);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(sizes.component_instances)
        .total_core_instances(sizes.core_instances)
        .total_memories(sizes.memories)
        .total_tables(sizes.tables)
        .total_stacks(sizes.stacks)
        .max_memory_size(limits.memory_bytes)
        .max_core_instances_per_component(16)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .pagemap_scan(Enabled::Auto)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .linear_memory_keep_resident(if PoolingAllocationConfig::is_pagemap_scan_available() {
            MEMORY_KEEP_RESIDENT_SCANNED
        } else {
            MEMORY_KEEP_RESIDENT_MEMSET
        });
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(epochs)
        .wasm_component_model(true)
        .memory_reservation(limits.memory_bytes as u64)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("courier-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompileSource {
    /// Compiled now (and stored in the cache, if there is one).
    Compiled,
    /// Read from the compiled-component cache.
    Cache,
}

/// Compiles components, keeping compiled artifacts on disk keyed by the
/// component's SHA-256 and the engine's compatibility hash (which covers the
/// wasmtime version and every setting that affects code generation).
#[derive(Clone)]
pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Returns the compiled component, from the cache when possible.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompileSource, Duration)> {
        let started = Instant::now();
        let Some(dir) = &self.dir else {
            return Ok((
                Component::new(engine, bytes)?,
                CompileSource::Compiled,
                started.elapsed(),
            ));
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
        // Loads of the same component, in this process or another sharing the
        // cache, wait for the first to compile it, then read the cache (a
        // Python component takes a minute to compile).
        let _compiling = lock_entry(dir, &path);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, CompileSource::Cache, started.elapsed())),
                Err(e) => tracing::warn!("ignoring unusable cache entry {}: {e}", path.display()),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        let component = match store_atomically(dir, &path, &compiled) {
            Ok(()) => deserialize(engine, &path)?,
            Err(e) => {
                tracing::warn!(
                    "cannot write the compiled-component cache {}: {e}",
                    path.display()
                );
                Component::new(engine, bytes)?
            }
        };
        Ok((component, CompileSource::Compiled, started.elapsed()))
    }
}

/// Holds the lock file of one cache entry (an exclusive `flock`, which
/// also parts threads of one process) until dropped; `None` when the cache
/// directory cannot hold one (the load then goes on unlocked).
fn lock_entry(dir: &Path, path: &Path) -> Option<std::fs::File> {
    let lock_path = path.with_extension("lock");
    let file = create_private_dir(dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        })
        .and_then(|file| file.lock().map(|()| file));
    match file {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::warn!("cannot lock {}: {e}", lock_path.display());
            None
        }
    }
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            unreachable!("only used to feed bytes")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(Sha256::digest(bytes));
    hex::encode(h.0.finalize())
}

/// Loads an artifact this cache wrote.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the file be a trusted artifact produced by
    // `Engine::precompile_component` for a compatible engine. Only this cache
    // writes into its directory (created with owner-only permissions, entries
    // renamed into place whole), the file name carries the engine's
    // compatibility hash, and wasmtime re-checks the artifact's header against
    // the engine before use.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Creates a directory readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

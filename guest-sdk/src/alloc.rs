//! The plugin's allocator. Each step runs in a fresh instance, so the first
//! allocations of a step come from an arena inside the module's initial
//! memory, and only what does not fit goes to the standard allocator (which
//! grows linear memory). A small step then never calls `memory.grow`, which
//! costs the host two page-protection changes (each a TLB shootdown) per step.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// Bytes served from the arena before the standard allocator takes over.
const ARENA_BYTES: usize = 256 << 10;

/// A bump arena in front of [`System`]: frees and grows in place only its
/// latest block (what `Vec` and `String` growth and scoped temporaries do);
/// other arena blocks are reclaimed when the instance is dropped.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) struct StepAllocator {
    arena: UnsafeCell<[u8; ARENA_BYTES]>,
    /// Offset of the first free byte.
    used: Cell<usize>,
    /// Offset of the latest block (zero before the first: the struct is all
    /// zeros, so it lives in `.bss`, not in the module's data).
    last: Cell<usize>,
}

// SAFETY: plugins run on wasm32 without threads; nothing is shared across threads.
#[allow(unsafe_code)]
unsafe impl Sync for StepAllocator {}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl StepAllocator {
    pub(crate) const fn new() -> Self {
        Self {
            arena: UnsafeCell::new([0; ARENA_BYTES]),
            used: Cell::new(0),
            last: Cell::new(0),
        }
    }

    fn base(&self) -> usize {
        self.arena.get() as usize
    }

    /// The arena offset of `ptr`, if the arena holds it.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base())
            .filter(|&at| at < ARENA_BYTES)
    }

    /// A block from the arena, if it fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start =
            (self.base() + self.used.get()).checked_next_multiple_of(layout.align())? - self.base();
        let end = start
            .checked_add(layout.size())
            .filter(|&end| end <= ARENA_BYTES)?;
        self.last.set(start);
        self.used.set(end);
        Some((self.base() + start) as *mut u8)
    }
}

#[allow(unsafe_code)]
// SAFETY: arena blocks are disjoint ranges of the arena, aligned as asked;
// everything else is forwarded to `System` with the caller's guarantees.
unsafe impl GlobalAlloc for StepAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            Some(at) if at == self.last.get() => self.used.set(at),
            Some(_) => {}
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(at) = self.offset(ptr) else {
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if at == self.last.get() && at + new_size <= ARENA_BYTES {
            self.used.set(at + new_size);
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded to the alignment, fits an isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
            unsafe { self.dealloc(ptr, layout) };
        }
        moved
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn in_arena(a: &StepAllocator, ptr: *mut u8) -> bool {
        a.offset(ptr).is_some()
    }

    #[test]
    fn serves_aligned_blocks_and_reuses_the_latest_when_freed() {
        let a = StepAllocator::new();
        let small = Layout::from_size_align(3, 1).unwrap();
        let wide = Layout::from_size_align(16, 16).unwrap();
        unsafe {
            let first = a.alloc(small);
            let second = a.alloc(wide);
            assert!(in_arena(&a, first) && in_arena(&a, second));
            assert_eq!(second as usize % 16, 0);
            assert!(second as usize >= first as usize + 3);
            a.dealloc(second, wide);
            assert_eq!(a.alloc(wide), second, "the latest block is reclaimed");
        }
    }

    #[test]
    fn grows_the_latest_block_in_place_and_moves_others_with_their_bytes() {
        let a = StepAllocator::new();
        let layout = Layout::from_size_align(4, 1).unwrap();
        unsafe {
            let first = a.alloc(layout);
            first.copy_from(b"abcd".as_ptr(), 4);
            assert_eq!(
                a.realloc(first, layout, 64),
                first,
                "latest block grows in place"
            );
            let _second = a.alloc(layout);
            let moved = a.realloc(first, Layout::from_size_align(64, 1).unwrap(), 128);
            assert_ne!(moved, first);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
        }
    }

    #[test]
    fn falls_back_to_the_system_allocator_when_the_arena_is_full() {
        let a = StepAllocator::new();
        let big = Layout::from_size_align(ARENA_BYTES - 8, 1).unwrap();
        let more = Layout::from_size_align(64, 8).unwrap();
        unsafe {
            let arena_block = a.alloc(big);
            assert!(in_arena(&a, arena_block));
            let system_block = a.alloc(more);
            assert!(!system_block.is_null() && !in_arena(&a, system_block));
            system_block.write_bytes(7, 64);
            let grown = a.realloc(arena_block, big, ARENA_BYTES + 1);
            assert!(
                !in_arena(&a, grown),
                "a block outgrowing the arena moves to the system allocator"
            );
            a.dealloc(grown, Layout::from_size_align(ARENA_BYTES + 1, 1).unwrap());
            a.dealloc(system_block, more);
        }
    }
}

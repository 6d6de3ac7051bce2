// Atomic operations on single bytes anywhere in memory (the tally's sketch registers, shared by
// every event-loop thread), which Swift's Synchronization module offers only for values it owns.
//
// The registers and a sketch's changed mark are read and written in one total order
// (sequentially consistent): a raise followed by a look at the mark, against the flush's taking
// of the mark followed by its reading of the registers, so that either the flush reads the raise
// or the raiser sees the mark taken and sets it again. On x86 the raise, the mark's store and
// the taking are locked instructions (each rare); the loads are plain.
#include <stdint.h>

/// The byte at `p`, read while other threads may raise it.
static inline uint8_t courier_byte_load(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

/// Raises the byte at `p` to `v` if it is lower; 1 when this call raised it.
static inline int courier_byte_raise(uint8_t *p, uint8_t v) {
    uint8_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v) {
        if (__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return 1;
    }
    return 0;
}

/// Stores `v` at `p`.
static inline void courier_byte_store(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/// Swaps `v` in and returns what was there.
static inline uint8_t courier_byte_exchange(uint8_t *p, uint8_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

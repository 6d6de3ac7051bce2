// Atomic operations on single bytes anywhere in memory (the tally's sketch registers, shared by
// every event-loop thread), which Swift's Synchronization module offers only for values it owns.
#include <stdint.h>

/// The byte at `p`, read while other threads may raise it.
static inline uint8_t courier_byte_load(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/// Raises the byte at `p` to `v` if it is lower; 1 when this call raised it.
static inline int courier_byte_raise(uint8_t *p, uint8_t v) {
    uint8_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v) {
        if (__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 1;
    }
    return 0;
}

/// Stores `v` at `p` after every write this thread made before (a mark that they happened).
static inline void courier_byte_store_release(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/// Swaps `v` in and returns what was there; sees every write made before the mark it takes.
static inline uint8_t courier_byte_exchange(uint8_t *p, uint8_t v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }

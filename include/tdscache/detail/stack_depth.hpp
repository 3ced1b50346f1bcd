// How much stack the calling thread has left, for the recursive walkers: src/canonical.cpp over
// JSON text and python/src/object_canonical.cpp over Python objects. max_depth alone cannot
// protect a thread with a small stack; these turn what would be a crash into depth_exceeded.
#pragma once

#include <cstdint>

namespace tds::detail {

// The lowest address a walk on this thread should reach: the stack's low end plus a reserve for
// the work one level does past its depth check. 0 when the stack cannot be found (then nothing
// is refused). Computed once per thread; defined in src/canonical.cpp.
std::uintptr_t thread_stack_floor() noexcept;

// Whether the caller is already below `floor` (stacks grow down on every target we build for).
// The frame address, not a local's: under ASan, locals may live on a heap "fake stack".
inline bool below_stack_floor(std::uintptr_t floor) noexcept {
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) < floor;
}

}  // namespace tds::detail

// Limits on the memory a weight or a run may take, for sizes that come from an untrusted model:
// a blob can declare a tensor far larger than the machine (or than its own data), and touching
// that much memory would get the process killed, or stall it, instead of failing cleanly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "common/status.h"

namespace lsc {

// The most one execution layout, or the scratch and output of one run, may take: half of the
// physical memory (or of the cgroup's memory limit, when lower). The environment variable
// LSC_ORT_MEMORY_BUDGET_MB overrides it (read once).
uint64_t MemoryBudget();

// Fails with a message naming `what` when `bytes` exceeds MemoryBudget().
Status CheckAllocation(uint64_t bytes, const char* what);

// Declared dimensions that cost memory or work without data behind them (the output columns of
// a weight: 8 bytes each in its column index; the taps of a convolution: a row of every im2col
// tile) may exceed kFreeExtent only in proportion to the blob's size: at most
// kExtentPerBlobByte per byte. A pruned layer of any real size passes; a few hundred bytes
// declaring billions of columns do not.
constexpr int64_t kFreeExtent = int64_t{1} << 20;
constexpr int64_t kExtentPerBlobByte = 16;
Status CheckDeclaredExtent(int64_t extent, uint64_t blob_bytes, const char* what);

// Memory for a large array that a kernel streams from DRAM: where it takes kHugePageMinBytes or
// more, whole 2 MiB pages that Linux is asked to back with transparent huge pages before they are
// touched (in its default `madvise` mode it does so only on request), so the stream needs few
// page walks (8192 x 8192 at 90%, caches flushed: 1.08x). Elsewhere, and for smaller arrays,
// plain operator new.
constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kHugePageMinBytes = 2 * kHugePageBytes;
void* AllocateStreamed(size_t bytes);
void FreeStreamed(void* memory, size_t bytes) noexcept;

template <typename T>
struct StreamedAllocator {
  using value_type = T;
  StreamedAllocator() = default;
  template <typename U>
  StreamedAllocator(const StreamedAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(AllocateStreamed(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept { FreeStreamed(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const StreamedAllocator<U>&) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const StreamedAllocator<U>&) const noexcept {
    return false;
  }
};

}  // namespace lsc

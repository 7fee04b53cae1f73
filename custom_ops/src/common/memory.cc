#include "common/memory.h"

#include <cstdio>
#include <cstdlib>

#if defined(_WIN32)
#include <windows.h>
#else
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lsc {
namespace {

uint64_t PhysicalMemory() {
  uint64_t physical = uint64_t{1} << 36;
#if defined(_WIN32)
  MEMORYSTATUSEX status;
  status.dwLength = sizeof(status);
  if (GlobalMemoryStatusEx(&status)) physical = status.ullTotalPhys;
#else
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) physical = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
#endif
#if defined(__linux__)
  // A container's limit (cgroup v2, then v1) when it is below the machine's memory.
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (std::FILE* file = std::fopen(path, "r")) {
      unsigned long long limit = 0;
      if (std::fscanf(file, "%llu", &limit) == 1 && limit > 0 && limit < physical) physical = limit;
      std::fclose(file);
    }
  }
#endif
  return physical;
}

}  // namespace

uint64_t MemoryBudget() {
  static const uint64_t budget = [] {
    const char* override_mb = std::getenv("LSC_ORT_MEMORY_BUDGET_MB");
    if (override_mb != nullptr && *override_mb) {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(override_mb, &end, 10);
      if (end != override_mb && *end == '\0' && mb > 0 && mb < (uint64_t{1} << 40)) return uint64_t{mb} << 20;
    }
    return PhysicalMemory() / 2;
  }();
  return budget;
}

Status CheckAllocation(uint64_t bytes, const char* what) {
  if (bytes > MemoryBudget()) {
    return Fail(what, " would need ", (bytes + (1 << 20) - 1) >> 20, " MiB, more than the memory budget of ",
                MemoryBudget() / (1 << 20), " MiB (half of this machine's memory, or LSC_ORT_MEMORY_BUDGET_MB)");
  }
  return Status();
}

Status CheckDeclaredExtent(int64_t extent, uint64_t blob_bytes, const char* what) {
  const uint64_t backed = blob_bytes >= (uint64_t{1} << 58) ? uint64_t{1} << 62 : blob_bytes * kExtentPerBlobByte;
  const uint64_t limit = backed > static_cast<uint64_t>(kFreeExtent) ? backed : static_cast<uint64_t>(kFreeExtent);
  if (extent < 0 || static_cast<uint64_t>(extent) > limit) {
    return Fail(what, " is ", extent, ", more than a blob of ", blob_bytes, " bytes can back (at most ", limit,
                "); is its shape corrupted?");
  }
  return Status();
}

#if defined(__linux__)
void* AllocateStreamed(size_t bytes) {
  if (bytes < kHugePageMinBytes) return ::operator new(bytes);
  if (bytes > SIZE_MAX - kHugePageBytes) throw std::bad_alloc();
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* memory = std::aligned_alloc(kHugePageBytes, rounded);
  if (memory == nullptr) throw std::bad_alloc();
  madvise(memory, rounded, MADV_HUGEPAGE);  // advice only: without it the pages are 4 KiB ones
  return memory;
}

void FreeStreamed(void* memory, size_t bytes) noexcept {
  if (bytes < kHugePageMinBytes) {
    ::operator delete(memory);
  } else {
    std::free(memory);
  }
}
#else
void* AllocateStreamed(size_t bytes) { return ::operator new(bytes); }
void FreeStreamed(void* memory, size_t) noexcept { ::operator delete(memory); }
#endif

}  // namespace lsc

#include "common/memory.h"

#if defined(_WIN32)
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace lsc {

uint64_t MemoryBudget() {
  static const uint64_t budget = [] {
    uint64_t physical = uint64_t{1} << 36;
#if defined(_WIN32)
    MEMORYSTATUSEX status;
    status.dwLength = sizeof(status);
    if (GlobalMemoryStatusEx(&status)) physical = status.ullTotalPhys;
#else
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) physical = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
#endif
    return physical / 2;
  }();
  return budget;
}

Status CheckAllocation(uint64_t bytes, const char* what) {
  if (bytes > MemoryBudget()) {
    return Fail(what, " would need ", bytes / (1 << 20), " MiB, more than half of this machine's memory (",
                MemoryBudget() / (1 << 20), " MiB); is the blob's shape corrupted?");
  }
  return Status();
}

}  // namespace lsc

// Guarding allocations whose size comes from a blob header: a blob can declare a tensor far
// larger than the machine, and touching that much memory would get the process killed instead
// of failing cleanly.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace lsc {

// Half of the physical memory: the most one execution layout may take.
uint64_t MemoryBudget();

// Fails with a message naming `what` when `bytes` exceeds MemoryBudget().
Status CheckAllocation(uint64_t bytes, const char* what);

}  // namespace lsc

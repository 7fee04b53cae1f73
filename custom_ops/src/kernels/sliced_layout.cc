#include "kernels/sliced_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common/memory.h"

namespace lsc {
namespace {

// The float16 bit pattern of a value that came from float16 (exact; NaN payloads kept).
uint32_t HalfBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u, exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFF;
  if (exponent == 0xFF) return sign | 0x7C00u | (mantissa >> 13);
  if (exponent == 0) return sign;
  const int e = static_cast<int>(exponent) - 112;
  if (e >= 31) return sign | 0x7C00u;
  if (e >= 1) return sign | (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  if (e < -10) return sign;
  return sign | ((mantissa | 0x800000u) >> (14 - e));
}

// The stored bit patterns of the values at `type`'s width, or false if one does not round-trip.
bool StoredBits(const ColumnLists& columns, ValueType type, std::vector<uint32_t>* bits) {
  bits->resize(columns.nnz());
  for (uint64_t i = 0; i < columns.nnz(); ++i) {
    const float f = columns.value[i];
    uint32_t b = 0;
    switch (type) {
      case ValueType::kFloat32: std::memcpy(&b, &f, 4); break;
      case ValueType::kFloat16: b = HalfBits(f); break;
      case ValueType::kInt8: {
        const float q = std::nearbyint(f / columns.scale);
        if (!(q >= -128.0f && q <= 127.0f)) return false;
        b = static_cast<uint32_t>(static_cast<int32_t>(q)) & 0xFF;
        break;
      }
    }
    const float back = ValueToFloat(type, b, columns.scale);
    if (std::memcmp(&back, &f, 4) != 0 || b == 0) return false;
    (*bits)[i] = b;
  }
  return true;
}

uint64_t Escapes(uint64_t gap, uint64_t max_step) { return gap > 0 ? (gap - 1) / max_step : 0; }

// Deals the columns `lane` (-1: none) of one group into windowed rounds, calling
// emit(advance, taken) per round with taken[j] the entry lane j takes (or ~0 for none), and
// empty(count) for `count` empty rounds that each advance the window by 65535 rows (counted, not
// looped over here: a declared K of billions of rows would otherwise cost that much time before
// the layout's size is checked).
template <typename Emit, typename Empty>
void DealWindows(const ColumnLists& columns, const int32_t* lane, Emit&& emit, Empty&& empty) {
  uint64_t next[kSlicedLanes], end[kSlicedLanes], taken[kSlicedLanes];
  for (int j = 0; j < kSlicedLanes; ++j) {
    next[j] = lane[j] < 0 ? 0 : columns.ptr[lane[j]];
    end[j] = lane[j] < 0 ? 0 : columns.ptr[lane[j] + 1];
  }
  const uint64_t last_start = columns.K > kSlicedWindow ? static_cast<uint64_t>(columns.K - kSlicedWindow) : 0;
  uint64_t base = 0;
  for (;;) {
    uint64_t start = ~uint64_t{0};
    for (int j = 0; j < kSlicedLanes; ++j) {
      if (next[j] < end[j]) start = std::min<uint64_t>(start, columns.row[next[j]]);
    }
    if (start == ~uint64_t{0}) return;
    start = std::min(start, last_start);
    if (const uint64_t skips = Escapes(start - base, 65535)) {
      empty(skips);
      base += skips * 65535;
    }
    for (int j = 0; j < kSlicedLanes; ++j) {
      const bool takes = next[j] < end[j] && columns.row[next[j]] < start + kSlicedWindow;
      taken[j] = takes ? next[j]++ : ~uint64_t{0};
    }
    emit(static_cast<uint16_t>(start - base), taken);
    base = start;
  }
}

}  // namespace

Status BuildSlicedLayout(const ColumnLists& columns, SlicedLayout* out, bool windowed) {
  SlicedLayout layout;
  layout.K = columns.K;
  layout.N = columns.N;
  layout.groups = (columns.N + kSlicedLanes - 1) / kSlicedLanes;
  ValueType type = columns.stored;
  std::vector<uint32_t> bits;
  if (!StoredBits(columns, type, &bits)) {
    type = ValueType::kFloat32;
    StoredBits(columns, type, &bits);
  }
  layout.value_type = type == ValueType::kFloat16 ? SlicedValue::kFloat16
                      : type == ValueType::kInt8  ? SlicedValue::kInt8
                                                  : SlicedValue::kFloat32;
  layout.scale = type == ValueType::kInt8 ? columns.scale : 1.0f;
  const size_t width = type == ValueType::kFloat32 ? 4 : type == ValueType::kFloat16 ? 2 : 1;

  // Entries of each column (non-zeros plus escapes) for a step width, and the width to use.
  auto lane_lengths = [&](uint64_t max_step, std::vector<uint64_t>* lengths) {
    uint64_t escapes = 0;
    lengths->assign(static_cast<size_t>(columns.N), 0);
    for (int64_t n = 0; n < columns.N; ++n) {
      uint64_t previous = 0, count = 0;
      for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
        const uint64_t e = Escapes(columns.row[i] - previous, max_step);
        escapes += e;
        count += e + 1;
        previous = columns.row[i];
      }
      (*lengths)[static_cast<size_t>(n)] = count;
    }
    return escapes;
  };
  std::vector<uint64_t> lengths;
  layout.step_bytes = 1;
  layout.windowed = windowed;
  if (windowed) {
    lengths.resize(static_cast<size_t>(columns.N));
    for (int64_t n = 0; n < columns.N; ++n) lengths[static_cast<size_t>(n)] = columns.ptr[n + 1] - columns.ptr[n];
  } else if (lane_lengths(255, &lengths) > columns.nnz() / 8 + 16) {
    layout.step_bytes = 2;
    lane_lengths(65535, &lengths);
  }
  const uint64_t max_step = layout.step_bytes == 1 ? 255 : 65535;

  // Columns by decreasing length, dealt kSlicedLanes at a time.
  std::vector<int64_t> order(static_cast<size_t>(columns.N));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  layout.column.assign(static_cast<size_t>(layout.groups * kSlicedLanes), -1);
  layout.group_start.assign(static_cast<size_t>(layout.groups) + 1, 0);
  for (int64_t g = 0; g < layout.groups; ++g) {
    uint64_t rounds = 0;
    for (int j = 0; j < kSlicedLanes; ++j) {
      const int64_t at = g * kSlicedLanes + j;
      if (at >= columns.N) break;
      layout.column[static_cast<size_t>(at)] = static_cast<int32_t>(order[static_cast<size_t>(at)]);
      rounds = std::max(rounds, lengths[static_cast<size_t>(order[static_cast<size_t>(at)])]);
    }
    if (windowed) {
      rounds = 0;
      DealWindows(
          columns, &layout.column[static_cast<size_t>(g * kSlicedLanes)], [&](uint16_t, const uint64_t*) { ++rounds; },
          [&](uint64_t count) { rounds += count; });
    }
    if (rounds > (uint64_t{1} << 40) || layout.group_start[static_cast<size_t>(g)] > (uint64_t{1} << 40)) {
      return Fail("the sliced layout would have too many rounds");
    }
    layout.group_start[static_cast<size_t>(g) + 1] = layout.group_start[static_cast<size_t>(g)] + rounds;
  }
  if (layout.rounds() > (uint64_t{1} << 40)) return Fail("the sliced layout would have too many rounds");
  const uint64_t slots = layout.rounds() * kSlicedLanes;
  LSC_RETURN_IF_ERROR(CheckAllocation(slots * (layout.step_bytes + width) + 4 * layout.column.size() +
                                          (windowed ? 2 * layout.rounds() : 0),
                                      "the sliced layout of this weight"));
  layout.step.assign(slots * static_cast<uint64_t>(layout.step_bytes), 0);
  if (windowed) {
    // Values only for taken lanes: as many as the non-zeros, then 64 bytes of padding.
    layout.value.assign(columns.nnz() * width + 64, 0);
    layout.window.assign(layout.rounds(), 0);
    layout.value_start.assign(static_cast<size_t>(layout.groups) + 1, 0);
    uint64_t packed = 0;
    for (int64_t g = 0; g < layout.groups; ++g) {
      layout.value_start[static_cast<size_t>(g)] = packed;
      uint64_t round = layout.group_start[static_cast<size_t>(g)], start = 0;
      DealWindows(columns, &layout.column[static_cast<size_t>(g * kSlicedLanes)],
                  [&](uint16_t advance, const uint64_t* taken) {
                    layout.window[round] = advance;
                    start += advance;
                    for (int j = 0; j < kSlicedLanes; ++j) {
                      const uint64_t slot = round * kSlicedLanes + static_cast<uint64_t>(j);
                      if (taken[j] == ~uint64_t{0}) {
                        layout.step[slot] = kIdleLane;
                        continue;
                      }
                      layout.step[slot] = static_cast<uint8_t>(columns.row[taken[j]] - start);
                      std::memcpy(&layout.value[width * packed++], &bits[taken[j]], width);
                    }
                    ++round;
                  },
                  [&](uint64_t count) {  // within the rounds the budget check admitted
                    for (uint64_t c = 0; c < count; ++c, ++round) {
                      layout.window[round] = 65535;
                      std::fill_n(&layout.step[round * kSlicedLanes], kSlicedLanes, kIdleLane);
                    }
                    start += count * 65535;
                  });
    }
    layout.value_start[static_cast<size_t>(layout.groups)] = packed;
    *out = std::move(layout);
    return Status();
  }
  layout.value.assign(slots * width, 0);
  for (int64_t g = 0; g < layout.groups; ++g) {
    for (int j = 0; j < kSlicedLanes; ++j) {
      const int32_t n = layout.column[static_cast<size_t>(g * kSlicedLanes + j)];
      if (n < 0) continue;
      uint64_t slot = layout.group_start[static_cast<size_t>(g)] * kSlicedLanes + static_cast<uint64_t>(j);
      uint64_t previous = 0;
      auto put = [&](uint64_t step, uint32_t value_bits) {
        if (layout.step_bytes == 1) {
          layout.step[slot] = static_cast<uint8_t>(step);
        } else {
          const uint16_t s16 = static_cast<uint16_t>(step);
          std::memcpy(&layout.step[2 * slot], &s16, 2);
        }
        std::memcpy(&layout.value[width * slot], &value_bits, width);  // little-endian low bytes
        slot += kSlicedLanes;
      };
      for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
        uint64_t gap = columns.row[i] - previous;
        while (gap > max_step) {
          put(max_step, 0);
          gap -= max_step;
        }
        put(gap, bits[i]);
        previous = columns.row[i];
      }
    }
  }
  *out = std::move(layout);
  return Status();
}

}  // namespace lsc

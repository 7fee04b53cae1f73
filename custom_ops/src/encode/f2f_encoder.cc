#include "encode/f2f_encoder.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "format/codecs/f2f.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace lsc {
namespace {

constexpr uint32_t kInfinity = 1u << 28;
constexpr int kCareWordBits = 32;  // care bits of a block the search sees (the rest are patched)
constexpr uint64_t kTraceBudget = uint64_t{32} << 20;  // bytes of back pointers per task

// ---- the search step: the hot loop, compiled for several ISAs -----------------------------
//
// States are packed newest input first: after block t the state is x_t | x_(t-1) << n_in | ...
// The predecessors of state s' = x | b << n_in are s = b | d << top (top = n_in (n_s - 2)) for
// every d (the input that leaves the register), so for fixed b and d one predecessor feeds the
// X = 2^n_in successors x | b << n_in, contiguous: the inner loop runs over x, in SIMD lanes.
//
//   next[x | b << n_in] = min_d cost[b | d << top] + popcount(e[x] ^ c[b | d << top])
//
// with e[x] = (M_0 x ^ target) and c[s] = (M_1 x_(t-1) ^ ... ) on the block's care bits.

inline uint32_t PopCountSwar(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  v = (v + (v >> 4)) & 0x0F0F0F0Fu;
  return (v * 0x01010101u) >> 24;
}

template <int X, bool kHardwarePopcount>
inline __attribute__((always_inline)) void StepFixed(const uint32_t* cost, const uint32_t* c, const uint32_t* e,
                                                     int n_in, int top, uint32_t nbase, uint32_t* next,
                                                     uint16_t* back) {
  for (uint32_t b = 0; b < nbase; ++b) {
    uint32_t best[X], arg[X];
    for (int x = 0; x < X; ++x) {
      best[x] = 0xFFFFFFFFu;
      arg[x] = 0;
    }
    for (uint32_t d = 0; d < static_cast<uint32_t>(X); ++d) {
      const uint32_t s = b | (d << top);
      const uint32_t v = cost[s], cs = c[s];
      for (int x = 0; x < X; ++x) {
        const uint32_t diff = e[x] ^ cs;
        const uint32_t total = v + (kHardwarePopcount ? static_cast<uint32_t>(__builtin_popcount(diff)) : PopCountSwar(diff));
        const bool better = total < best[x];
        best[x] = better ? total : best[x];
        arg[x] = better ? d : arg[x];
      }
    }
    uint32_t* out = next + (b << n_in);
    uint16_t* from = back + (b << n_in);
    for (int x = 0; x < X; ++x) {
      out[x] = best[x];
      from[x] = static_cast<uint16_t>(arg[x]);
    }
  }
}

template <bool kHardwarePopcount>
inline __attribute__((always_inline)) void StepBody(const uint32_t* cost, const uint32_t* c, const uint32_t* e,
                                                    int n_in, int top, uint32_t nbase, uint32_t* next,
                                                    uint16_t* back) {
  switch (n_in) {  // fixed lane counts vectorize; others take the generic loop
    case 3: return StepFixed<8, kHardwarePopcount>(cost, c, e, n_in, top, nbase, next, back);
    case 4: return StepFixed<16, kHardwarePopcount>(cost, c, e, n_in, top, nbase, next, back);
    case 5: return StepFixed<32, kHardwarePopcount>(cost, c, e, n_in, top, nbase, next, back);
    case 6: return StepFixed<64, kHardwarePopcount>(cost, c, e, n_in, top, nbase, next, back);
    default: break;
  }
  const uint32_t X = 1u << n_in;
  for (uint32_t b = 0; b < nbase; ++b) {
    for (uint32_t x = 0; x < X; ++x) {
      uint32_t best = 0xFFFFFFFFu, arg = 0;
      for (uint32_t d = 0; d < X; ++d) {
        const uint32_t s = b | (d << top);
        const uint32_t diff = e[x] ^ c[s];
        const uint32_t total =
            cost[s] + (kHardwarePopcount ? static_cast<uint32_t>(__builtin_popcount(diff)) : PopCountSwar(diff));
        if (total < best) {
          best = total;
          arg = d;
        }
      }
      next[x | (b << n_in)] = best;
      back[x | (b << n_in)] = static_cast<uint16_t>(arg);
    }
  }
}

using StepFn = void (*)(const uint32_t*, const uint32_t*, const uint32_t*, int, int, uint32_t, uint32_t*, uint16_t*);

void StepPortable(const uint32_t* cost, const uint32_t* c, const uint32_t* e, int n_in, int top, uint32_t nbase,
                  uint32_t* next, uint16_t* back) {
  StepBody<false>(cost, c, e, n_in, top, nbase, next, back);
}

#if defined(__x86_64__) || defined(_M_X64)
// n_in = 4 (the automatic choice), written out: the 16 successors of a base are one register.
__attribute__((target("avx2,popcnt"))) inline __m256i PopCount32Avx2(__m256i v) {
  const __m256i nibbles = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                           2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(nibbles, _mm256_and_si256(v, low)),
                                        _mm256_shuffle_epi8(nibbles, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
}

__attribute__((target("avx2,popcnt"))) void StepAvx2(const uint32_t* cost, const uint32_t* c, const uint32_t* e,
                                                     int n_in, int top, uint32_t nbase, uint32_t* next,
                                                     uint16_t* back) {
  if (n_in != 4) return StepBody<false>(cost, c, e, n_in, top, nbase, next, back);
  const __m256i e0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e));
  const __m256i e1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + 8));
  for (uint32_t b = 0; b < nbase; ++b) {
    __m256i best0 = _mm256_set1_epi32(0x7FFFFFFF), best1 = best0, arg0 = _mm256_setzero_si256(), arg1 = arg0;
    for (uint32_t d = 0; d < 16; ++d) {
      const uint32_t s = b | (d << top);
      const __m256i v = _mm256_set1_epi32(static_cast<int>(cost[s])), cs = _mm256_set1_epi32(static_cast<int>(c[s]));
      const __m256i dd = _mm256_set1_epi32(static_cast<int>(d));
      const __m256i t0 = _mm256_add_epi32(v, PopCount32Avx2(_mm256_xor_si256(e0, cs)));
      const __m256i t1 = _mm256_add_epi32(v, PopCount32Avx2(_mm256_xor_si256(e1, cs)));
      // Costs stay below 2^31, so signed compares order them.
      const __m256i m0 = _mm256_cmpgt_epi32(best0, t0), m1 = _mm256_cmpgt_epi32(best1, t1);
      best0 = _mm256_blendv_epi8(best0, t0, m0);
      best1 = _mm256_blendv_epi8(best1, t1, m1);
      arg0 = _mm256_blendv_epi8(arg0, dd, m0);
      arg1 = _mm256_blendv_epi8(arg1, dd, m1);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(next + (b << 4)), best0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(next + (b << 4) + 8), best1);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(arg0, arg1), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(back + (b << 4)), packed);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,popcnt"))) void StepAvx512(
    const uint32_t* cost, const uint32_t* c, const uint32_t* e, int n_in, int top, uint32_t nbase, uint32_t* next,
    uint16_t* back) {
  if (n_in != 4) return StepBody<true>(cost, c, e, n_in, top, nbase, next, back);
  const __m512i ex = _mm512_loadu_si512(e);
  for (uint32_t b = 0; b < nbase; ++b) {
    __m512i best = _mm512_set1_epi32(-1), arg = _mm512_setzero_si512();
    for (uint32_t d = 0; d < 16; ++d) {
      const uint32_t s = b | (d << top);
      const __m512i total = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(cost[s])),
                                             _mm512_popcnt_epi32(_mm512_xor_si512(ex, _mm512_set1_epi32(static_cast<int>(c[s])))));
      const __mmask16 better = _mm512_cmplt_epu32_mask(total, best);
      best = _mm512_min_epu32(best, total);
      arg = _mm512_mask_mov_epi32(arg, better, _mm512_set1_epi32(static_cast<int>(d)));
    }
    _mm512_storeu_si512(next + (b << 4), best);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(back + (b << 4)), _mm512_cvtepi32_epi16(arg));
  }
}
#endif

// The best variant the CPU has; LSC_ORT_ISA (avx512, avx2, scalar) caps it, as for the kernels.
// Every variant breaks ties alike (the smallest d), so all give the same inputs.
// 16-bit lanes (AVX-512 BW + BITALG), n_in = 4 and n_s >= 3: two bases per register, costs as
// saturating uint16 renormalized every step (the minimum subtracted). The states on the optimal
// path stay within 32 (n_s - 1) of the minimum, far below saturation, so the inputs chosen are
// those of the 32-bit search. Lane 2x + j is successor x of base b + j. Care words of more than
// 16 bits take a second popcount (`wide`).
using Step16Fn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, bool,
                          int, uint32_t, uint16_t*, uint16_t*);

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bitalg"))) void Step16Avx512(
    const uint16_t* cost, const uint16_t* c_low, const uint16_t* c_high, const uint16_t* e_low,
    const uint16_t* e_high, bool wide, int top, uint32_t nbase, uint16_t* next, uint16_t* back) {
  alignas(64) static constexpr uint16_t kSpread[32] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
                                                       8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15};
  alignas(64) static constexpr uint16_t kGather[32] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
                                                       1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
  const __m512i spread = _mm512_load_si512(kSpread), gather = _mm512_load_si512(kGather);
  const __m512i el = _mm512_permutexvar_epi16(spread, _mm512_castsi256_si512(_mm256_loadu_si256(
                                                          reinterpret_cast<const __m256i*>(e_low))));
  const __m512i eh = wide ? _mm512_permutexvar_epi16(spread, _mm512_castsi256_si512(_mm256_loadu_si256(
                                                                 reinterpret_cast<const __m256i*>(e_high))))
                          : _mm512_setzero_si512();
  __m512i low = _mm512_set1_epi16(-1);
  for (uint32_t b = 0; b < nbase; b += 2) {
    __m512i best = _mm512_set1_epi16(-1), arg = _mm512_setzero_si512(), d_vec = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi16(1);
    for (uint32_t d = 0; d < 16; ++d, d_vec = _mm512_add_epi16(d_vec, one)) {
      const uint32_t s = b | (d << top);
      uint32_t pair_cost, pair_c;
      std::memcpy(&pair_cost, cost + s, 4);
      std::memcpy(&pair_c, c_low + s, 4);
      __m512i diff = _mm512_popcnt_epi16(_mm512_xor_si512(el, _mm512_set1_epi32(static_cast<int>(pair_c))));
      if (wide) {
        uint32_t pair_h;
        std::memcpy(&pair_h, c_high + s, 4);
        diff = _mm512_add_epi16(diff, _mm512_popcnt_epi16(_mm512_xor_si512(eh, _mm512_set1_epi32(static_cast<int>(pair_h)))));
      }
      const __m512i total = _mm512_adds_epu16(_mm512_set1_epi32(static_cast<int>(pair_cost)), diff);
      const __mmask32 better = _mm512_cmplt_epu16_mask(total, best);
      best = _mm512_min_epu16(best, total);
      arg = _mm512_mask_mov_epi16(arg, better, d_vec);
    }
    low = _mm512_min_epu16(low, best);
    _mm512_storeu_si512(next + (b << 4), _mm512_permutexvar_epi16(gather, best));
    _mm512_storeu_si512(back + (b << 4), _mm512_permutexvar_epi16(gather, arg));
  }
  // Renormalize: subtract the minimum cost.
  alignas(64) uint16_t lanes[32];
  _mm512_store_si512(lanes, low);
  uint16_t minimum = lanes[0];
  for (uint16_t v : lanes) minimum = v < minimum ? v : minimum;
  const __m512i least = _mm512_set1_epi16(static_cast<short>(minimum));
  const uint32_t states = nbase << 4;
  for (uint32_t s = 0; s < states; s += 32) {
    _mm512_storeu_si512(next + s, _mm512_subs_epu16(_mm512_loadu_si512(next + s), least));
  }
}
#endif

Step16Fn SelectStep16() {
#if defined(__x86_64__) || defined(_M_X64)
  const char* cap = std::getenv("LSC_ORT_ISA");
  if (cap && *cap && std::string(cap) != "avx512") return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bitalg")) {
    return Step16Avx512;
  }
#endif
  return nullptr;
}

StepFn SelectStep() {
#if defined(__x86_64__) || defined(_M_X64)
  const char* cap = std::getenv("LSC_ORT_ISA");
  const std::string isa = cap ? cap : "";
  __builtin_cpu_init();
  if ((isa.empty() || isa == "avx512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq")) {
    return StepAvx512;
  }
  if ((isa.empty() || isa == "avx512" || isa == "avx2") && __builtin_cpu_supports("avx2")) return StepAvx2;
#endif
  return StepPortable;
}

// ---- one task: a segment of blocks, a group of coded planes --------------------------------

struct Geometry {
  int n_in, n_out, n_s, width, X, top;
  uint32_t states, nbase;
  uint64_t nblocks;
};

// The care bits of one block: their offsets in the block and their slots.
struct Block {
  uint64_t first_slot, end_slot;
};

class SegmentEncoder {
 public:
  SegmentEncoder(const F2fEncodeRequest& request, const Geometry& g, const std::vector<uint64_t>& rows, StepFn step,
                 Step16Fn step16)
      : r_(request), g_(g), rows_(rows), step_(step), step16_(g.n_in == 4 && g.n_s >= 3 ? step16 : nullptr) {}

  // Encodes blocks [first, end) for the coded planes `planes` (bit numbers); writes the chosen
  // inputs to chosen[(t - first) * planes.size() + i] and appends (slot, plane) misses.
  void Encode(uint64_t first, uint64_t end, const std::vector<int>& planes, std::vector<uint32_t>* chosen,
              std::vector<std::pair<uint64_t, int>>* missed) {
    const uint64_t steps = end - first;
    const size_t np = planes.size();
    blocks_.resize(steps);
    const uint64_t* pos = r_.positions;
    uint64_t slot = std::lower_bound(pos, pos + r_.nslots, first * static_cast<uint64_t>(g_.n_out)) - pos;
    const uint64_t segment_first_slot = slot;
    slot_rows_.clear();
    for (uint64_t t = 0; t < steps; ++t) {
      const uint64_t block_start = (first + t) * static_cast<uint64_t>(g_.n_out);
      const uint64_t limit = block_start + static_cast<uint64_t>(g_.n_out);
      blocks_[t].first_slot = slot;
      for (; slot < r_.nslots && pos[slot] < limit; ++slot) slot_rows_.push_back(rows_[pos[slot] - block_start]);
      blocks_[t].end_slot = slot;
    }
    slot_base_ = segment_first_slot;
    cost_.assign(np * g_.states, 0);
    next_.assign(g_.states, 0);
    back_.resize(np * steps * g_.states);
    c_.resize(g_.states);
    e_.resize(static_cast<size_t>(g_.X));
    tables_.resize(static_cast<size_t>(g_.n_s) * g_.X);
    for (size_t p = 0; p < np; ++p) {
      std::fill(cost_.begin() + p * g_.states, cost_.begin() + (p + 1) * g_.states, kInfinity);
      cost_[p * g_.states] = 0;  // the register starts at zero in every segment
    }
    if (step16_) {
      EncodeNarrow(steps, planes);
      chosen->assign(steps * np, 0);
      Trace(steps, np, chosen);
      for (size_t p = 0; p < np; ++p) Verify(steps, p, planes[p], np, *chosen, missed);
      return;
    }
    for (uint64_t t = 0; t < steps; ++t) {
      const uint32_t care = PrepareTables(blocks_[t]);
      for (size_t p = 0; p < np; ++p) {
        const uint32_t target = Target(blocks_[t], planes[p]);
        for (int x = 0; x < g_.X; ++x) e_[x] = tables_[x] ^ target;
        uint32_t* cost = cost_.data() + p * g_.states;
        uint16_t* back = back_.data() + (p * steps + t) * g_.states;
        if (g_.n_s == 1) {
          uint32_t best = 0xFFFFFFFFu, arg = 0;
          for (int x = 0; x < g_.X; ++x) {
            const uint32_t n = static_cast<uint32_t>(__builtin_popcount(e_[x] & care));
            if (n < best) best = n, arg = static_cast<uint32_t>(x);
          }
          back[0] = static_cast<uint16_t>(arg);
          cost[0] += best;
          continue;
        }
        step_(cost, c_.data(), e_.data(), g_.n_in, g_.top, g_.nbase, next_.data(), back);
        if ((t & 0xFFFF) == 0xFFFF) {  // keep the costs far from overflow on long segments
          const uint32_t low = *std::min_element(next_.begin(), next_.end());
          for (uint32_t& v : next_) v -= std::min(v, low);
        }
        std::memcpy(cost, next_.data(), sizeof(uint32_t) * g_.states);
      }
    }
    chosen->assign(steps * np, 0);
    Trace(steps, np, chosen);
    for (size_t p = 0; p < np; ++p) Verify(steps, p, planes[p], np, *chosen, missed);
  }

 private:
  // The search with 16-bit costs (step16_); leaves the final costs in cost_ for Trace.
  void EncodeNarrow(uint64_t steps, const std::vector<int>& planes) {
    const size_t np = planes.size();
    const size_t S = g_.states;
    cost16_.assign(np * S, 0xFFFF);
    for (size_t p = 0; p < np; ++p) cost16_[p * S] = 0;
    next16_.resize(S);
    c_low_.resize(S);
    c_high_.resize(S);
    uint16_t e_low[16], e_high[16];
    for (uint64_t t = 0; t < steps; ++t) {
      PrepareTables(blocks_[t]);
      const bool wide = blocks_[t].end_slot - blocks_[t].first_slot > 16;
      StateTable(c_low_.data(), 0);
      if (wide) StateTable(c_high_.data(), 16);
      for (size_t p = 0; p < np; ++p) {
        const uint32_t target = Target(blocks_[t], planes[p]);
        for (int x = 0; x < 16; ++x) {
          const uint32_t e = tables_[x] ^ target;
          e_low[x] = static_cast<uint16_t>(e);
          e_high[x] = static_cast<uint16_t>(e >> 16);
        }
        uint16_t* cost = cost16_.data() + p * S;
        step16_(cost, c_low_.data(), c_high_.data(), e_low, e_high, wide, g_.top, g_.nbase, next16_.data(),
                back_.data() + (p * steps + t) * S);
        std::memcpy(cost, next16_.data(), sizeof(uint16_t) * S);
      }
    }
    for (size_t i = 0; i < cost_.size(); ++i) cost_[i] = cost16_[i];
  }

  // The tables of one block on its care bits (at most kCareWordBits of them): tables_[j X + x]
  // = M_j x, c_[s] = M_1 x_(t-1) ^ ... ^ M_(n_s-1) x_(t-n_s+1). Returns the care word mask.
  uint32_t PrepareTables(const Block& block) {
    const int k = static_cast<int>(std::min<uint64_t>(block.end_slot - block.first_slot, kCareWordBits));
    uint32_t column[f2f::kMaxWidth] = {};
    for (int i = 0; i < k; ++i) {
      const uint64_t row = slot_rows_[block.first_slot - slot_base_ + i];
      for (int j = 0; j < g_.width; ++j) column[j] |= static_cast<uint32_t>((row >> j) & 1) << i;
    }
    for (int j = 0; j < g_.n_s; ++j) {
      uint32_t* table = tables_.data() + static_cast<size_t>(j) * g_.X;
      table[0] = 0;
      for (int x = 1; x < g_.X; ++x) table[x] = table[x & (x - 1)] ^ column[j * g_.n_in + __builtin_ctz(x)];
    }
    if (g_.n_s > 1 && !step16_) StateTable(c_.data(), 0);
    return k == 32 ? 0xFFFFFFFFu : (1u << k) - 1;
  }

  // c over the states (or its 16 bits from `shift`), one register field at a time:
  // c[hi * span + lo] = c[lo] ^ M_j hi for the j-th field.
  template <typename T>
  void StateTable(T* __restrict c, int shift) const {
    const uint32_t* first = tables_.data() + g_.X;
    for (int x = 0; x < g_.X; ++x) c[x] = static_cast<T>(first[x] >> shift);
    uint32_t span = static_cast<uint32_t>(g_.X);
    for (int j = 2; j < g_.n_s; ++j) {
      const uint32_t* table = tables_.data() + static_cast<size_t>(j) * g_.X;
      for (int hi = 1; hi < g_.X; ++hi) {
        const T field = static_cast<T>(table[hi] >> shift);
        const T* __restrict in = c;
        T* __restrict out = c + hi * span;
        for (uint32_t lo = 0; lo < span; ++lo) out[lo] = in[lo] ^ field;
      }
      span *= static_cast<uint32_t>(g_.X);
    }
  }

  uint32_t Target(const Block& block, int plane) const {
    const int k = static_cast<int>(std::min<uint64_t>(block.end_slot - block.first_slot, kCareWordBits));
    uint32_t target = 0;
    for (int i = 0; i < k; ++i) target |= ((r_.values[block.first_slot + i] >> plane) & 1u) << i;
    return target;
  }

  // Follows the back pointers from the cheapest final state of every plane (the planes' chains
  // of dependent loads interleave, so their cache misses overlap).
  void Trace(uint64_t steps, size_t np, std::vector<uint32_t>* chosen) {
    if (steps == 0) return;
    state_.resize(np);
    for (size_t p = 0; p < np; ++p) {
      const uint32_t* cost = cost_.data() + p * g_.states;
      state_[p] = static_cast<uint32_t>(std::min_element(cost, cost + g_.states) - cost);
    }
    const uint32_t xmask = static_cast<uint32_t>(g_.X - 1);
    for (uint64_t t = steps; t-- > 0;) {
      for (size_t p = 0; p < np; ++p) {
        const uint16_t* back = back_.data() + (p * steps + t) * g_.states;
        if (g_.n_s == 1) {
          (*chosen)[t * np + p] = back[0];
          continue;
        }
        const uint32_t state = state_[p];
        (*chosen)[t * np + p] = state & xmask;
        state_[p] = (state >> g_.n_in) | (static_cast<uint32_t>(back[state]) << g_.top);
      }
    }
  }

  // Decodes every care bit with the chosen inputs, exactly as the decoder does; the wrong ones
  // become patches (this makes the encoding exact whatever the search missed).
  void Verify(uint64_t steps, size_t p, int plane, size_t np, const std::vector<uint32_t>& chosen,
              std::vector<std::pair<uint64_t, int>>* missed) const {
    uint64_t z = 0;  // the shift register
    const uint64_t width_mask = g_.width >= 64 ? ~uint64_t{0} : (uint64_t{1} << g_.width) - 1;
    for (uint64_t t = 0; t < steps; ++t) {
      z = ((z << g_.n_in) | chosen[t * np + p]) & width_mask;
      for (uint64_t s = blocks_[t].first_slot; s < blocks_[t].end_slot; ++s) {
        const uint32_t bit = static_cast<uint32_t>(f2f::Parity(slot_rows_[s - slot_base_] & z));
        if (bit != ((r_.values[s] >> plane) & 1u)) missed->emplace_back(s, plane);
      }
    }
  }

  const F2fEncodeRequest& r_;
  const Geometry& g_;
  const std::vector<uint64_t>& rows_;
  StepFn step_;
  Step16Fn step16_;
  std::vector<uint16_t> cost16_, next16_, c_low_, c_high_;
  std::vector<Block> blocks_;
  std::vector<uint64_t> slot_rows_;  // the row of M of each slot of the segment
  uint64_t slot_base_ = 0;           // the segment's first slot
  std::vector<uint32_t> cost_, next_, c_, e_, tables_, state_;
  std::vector<uint16_t> back_;
};

Status CheckRequest(const F2fEncodeRequest& r, Geometry* g) {
  if (r.bits != 8 && r.bits != 16 && r.bits != 32) return Fail("f2f encoder: value bits ", r.bits, " is not 8, 16 or 32");
  if (r.n_in < 1 || r.n_in > kF2fEncoderMaxInputs) {
    return Fail("f2f encoder: n_in=", r.n_in, " is out of range [1, ", kF2fEncoderMaxInputs, "]");
  }
  if (r.n_out < 1 || r.n_out > f2f::kMaxOutputs) {
    return Fail("f2f encoder: n_out=", r.n_out, " is out of range [1, ", f2f::kMaxOutputs, "]");
  }
  if (r.n_s < 1 || r.n_s > f2f::kMaxSteps) return Fail("f2f encoder: n_s=", r.n_s, " is out of range [1, ", f2f::kMaxSteps, "]");
  if (r.n_in * (r.n_s - 1) > kF2fEncoderMaxStateBits || r.n_in * r.n_s > kF2fEncoderMaxSearchBits) {
    return Fail("f2f encoder: n_in * n_s = ", r.n_in * r.n_s, " (", r.n_in * (r.n_s - 1),
                " state bits) is beyond the search limits: at most ", kF2fEncoderMaxSearchBits, " bits, ",
                kF2fEncoderMaxStateBits, " state bits");
  }
  if (r.bits < 32 && (r.planes >> r.bits)) return Fail("f2f encoder: planes ", r.planes, " exceed ", r.bits, " bits");
  if (r.numel >= (uint64_t{1} << 62) || r.nslots > r.numel) return Fail("f2f encoder: bad element or slot count");
  g->n_in = r.n_in;
  g->n_out = r.n_out;
  g->n_s = r.n_s;
  g->width = r.n_in * r.n_s;
  g->X = 1 << r.n_in;
  g->top = r.n_in * std::max(r.n_s - 2, 0);
  g->states = 1u << (r.n_in * (r.n_s - 1));
  g->nbase = r.n_s >= 2 ? 1u << g->top : 1u;
  g->nblocks = (r.numel + static_cast<uint64_t>(r.n_out) - 1) / static_cast<uint64_t>(r.n_out);
  if (r.segment_blocks < 1 || r.segment_blocks > std::max<uint64_t>(g->nblocks, 1)) {
    return Fail("f2f encoder: segment_blocks=", r.segment_blocks, " is out of range [1, ", std::max<uint64_t>(g->nblocks, 1), "]");
  }
  if (2 * static_cast<uint64_t>(g->states) * std::min(r.segment_blocks, std::max<uint64_t>(g->nblocks, 1)) > kTraceBudget) {
    return Fail("f2f encoder: segments of ", r.segment_blocks, " blocks with ", g->states,
                " register states need more than ", kTraceBudget >> 20, " MiB of back pointers; use shorter segments");
  }
  for (uint64_t i = 0; i < r.nslots; ++i) {
    if (r.positions[i] >= r.numel || (i && r.positions[i] <= r.positions[i - 1])) {
      return Fail("f2f encoder: slot positions must be strictly increasing and below ", r.numel);
    }
  }
  return Status();
}

}  // namespace

Status F2fEncode(const F2fEncodeRequest& request, uint8_t* inputs, uint64_t inputs_size, uint32_t* misses) {
  Geometry g{};
  LSC_RETURN_IF_ERROR(CheckRequest(request, &g));
  std::vector<int> coded;
  for (int b = 0; b < request.bits; ++b) {
    if ((request.planes >> b) & 1) coded.push_back(b);
  }
  const uint64_t P = coded.size();
  const uint64_t input_bits = g.nblocks * P * static_cast<uint64_t>(g.n_in);
  if (inputs_size != (input_bits + 7) / 8) {
    return Fail("f2f encoder: inputs buffer has ", inputs_size, " bytes, expected ", (input_bits + 7) / 8);
  }
  std::memset(inputs, 0, inputs_size);
  if (P == 0 || g.nblocks == 0) return Status();
  const std::vector<uint64_t> rows = f2f::MatrixRows(request.seed, g.n_out, g.width);

  // Tasks: segments x groups of planes, each group as large as the back-pointer budget allows.
  const uint64_t segment = request.segment_blocks;
  const uint64_t nsegments = (g.nblocks + segment - 1) / segment;
  const uint64_t per_plane = 2 * static_cast<uint64_t>(g.states) * std::min(segment, g.nblocks);
  uint64_t group = std::max<uint64_t>(1, std::min<uint64_t>(P, kTraceBudget / per_plane));
  const int threads = std::max(1, std::min(request.threads, 256));
  // Enough tasks to keep every thread busy, while each task shares its tables over many planes.
  while (group > 1 && nsegments * ((P + group - 1) / group) < static_cast<uint64_t>(4 * threads)) group = (group + 1) / 2;
  const uint64_t ngroups = (P + group - 1) / group;
  const uint64_t ntasks = nsegments * ngroups;
  const StepFn step = SelectStep();
  const Step16Fn step16 = SelectStep16();

  std::atomic<uint64_t> next_task{0};
  std::mutex lock;
  Status failure;
  auto worker = [&] {
    try {
      SegmentEncoder encoder(request, g, rows, step, step16);
      std::vector<uint32_t> chosen;
      std::vector<std::pair<uint64_t, int>> missed;
      std::vector<int> planes;
      for (uint64_t task = next_task++; task < ntasks; task = next_task++) {
        const uint64_t s = task / ngroups, first_plane = (task % ngroups) * group;
        const uint64_t first = s * segment, end = std::min(g.nblocks, first + segment);
        const uint64_t last_plane = std::min(P, first_plane + group);
        planes.assign(coded.begin() + first_plane, coded.begin() + last_plane);
        missed.clear();
        encoder.Encode(first, end, planes, &chosen, &missed);
        std::lock_guard<std::mutex> hold(lock);
        const uint64_t np = planes.size();
        for (uint64_t t = 0; t < end - first; ++t) {
          for (uint64_t i = 0; i < np; ++i) {
            const uint64_t bit = ((first + t) * P + first_plane + i) * static_cast<uint64_t>(g.n_in);
            uint64_t value = static_cast<uint64_t>(chosen[t * np + i]) << (bit & 7);  // n_in <= 12: 3 bytes
            for (uint64_t byte = bit >> 3; value; ++byte, value >>= 8) inputs[byte] |= static_cast<uint8_t>(value);
          }
        }
        for (const auto& [slot, plane] : missed) misses[slot] |= 1u << plane;
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> hold(lock);
      failure = Fail("f2f encoder: ", e.what());
      next_task = ntasks;
    }
  };
  const uint64_t nthreads = std::min<uint64_t>(static_cast<uint64_t>(threads), ntasks);
  std::vector<std::thread> pool;
  for (uint64_t i = 1; i < nthreads; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  return failure;
}

}  // namespace lsc

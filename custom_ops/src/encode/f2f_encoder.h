// The f2f encoder: chooses the XOR network's input bits for every block of every coded bit plane
// (format: format/codecs/f2f.h, lsc_ort/codecs/f2f.py). Runs outside onnxruntime (lsc_ort calls
// it through the C API, capi.cc), multi-threaded over independent (segment, plane group) tasks.
//
// Within a segment the shift register couples consecutive blocks, so the inputs are chosen by
// dynamic programming: a Viterbi search over the register states (the inputs of the previous
// n_s - 1 blocks; 2^(n_in (n_s - 1)) of them) that minimizes the number of care bits the network
// gets wrong. Only the care bits of a block matter, so each step works on its care bits alone,
// packed into one 32-bit word: the costs of all (state, input) pairs are XORs and popcounts of
// such words, over precomputed tables of M x for every input and every state.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace lsc {

struct F2fEncodeRequest {
  const uint64_t* positions = nullptr;  // stream position of each slot, strictly increasing, < numel
  const uint32_t* values = nullptr;     // the slots' bit patterns (zero-extended)
  uint64_t nslots = 0;
  uint64_t numel = 0;
  int bits = 32;  // value bits per element: 8, 16 or 32
  int n_in = 4, n_out = 40, n_s = 3;
  uint64_t seed = 0;
  uint64_t segment_blocks = 1024;
  uint32_t planes = 0;  // the coded bit planes
  int threads = 1;
};

// Encoder limits (the format allows more): the search visits 2^(n_in n_s) (state, input) pairs
// per block.
constexpr int kF2fEncoderMaxInputs = 12;     // n_in
constexpr int kF2fEncoderMaxStateBits = 16;  // n_in (n_s - 1)
constexpr int kF2fEncoderMaxSearchBits = 20;  // n_in n_s

// Fills `inputs` (exactly ceil(nblocks * P * n_in / 8) bytes, P coded planes, nblocks =
// ceil(numel / n_out)) and sets bit b of misses[i] when the decoded bit b of slot i is wrong and
// must be patched (`misses` has nslots entries, zeroed by the caller).
Status F2fEncode(const F2fEncodeRequest& request, uint8_t* inputs, uint64_t inputs_size, uint32_t* misses);

}  // namespace lsc

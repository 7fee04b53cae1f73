// f2f: fixed-to-fixed XOR-gate coding of the values (Park et al., ICLR 2022), the definitions the
// decoder (f2f.cc) and the encoder (encode/f2f_encoder.cc) share. Spec: lsc_ort/codecs/f2f.py
// and docs/blob-format.md.
//
// Every bit plane of the values is read as a stream over the matrix view, in the order `order`
// (0: C order; 1: diagonal, see StreamPosition), and cut into blocks of n_out consecutive stream
// positions. Block t of a plane is y_t = M z_t over GF(2), where z_t concatenates the n_in
// stored input bits of blocks t, t-1, ..., t-n_s+1 (bits [j n_in, (j+1) n_in) hold block t-j's;
// inputs before the start of a segment of segment_blocks blocks are zero).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace lsc {
namespace f2f {

constexpr int kMaxInputs = 32;     // n_in
constexpr int kMaxSteps = 8;       // n_s
constexpr int kMaxWidth = 64;      // n_in * n_s: z_t fits one 64-bit word
constexpr int kMaxOutputs = 4096;  // n_out
constexpr int kRowDraws = 64;      // draws of the generator per row of M before a zero row is kept

// Param indices (the first five are the lsc position layer's).
enum Param : size_t {
  kNIn = 5, kNOut, kNS, kOrder, kSeed, kSegmentBlocks, kPlanes, kFill, kPatchCodeBits, kPatchSplit, kParamCount
};
enum Order : int64_t { kRowMajor = 0, kDiagonal = 1 };

// The stream position of element (r, c) of an R x C matrix. In diagonal order stream position q
// is element (q mod R, (q div R + q mod R) mod C): consecutive positions step down a row and
// right a column, so a block samples n_out rows and columns and every block sees about the
// layer's density even when rows or columns differ (magnitude pruning keeps more of some).
inline uint64_t StreamPosition(uint64_t r, uint64_t c, uint64_t R, uint64_t C, int64_t order) {
  if (order == kRowMajor) return r * C + c;
  const uint64_t shift = r % C;
  return ((c + C - shift) % C) * R + r;
}

// SplitMix64 (Steele, Lea, Flood 2014): the generator of M.
inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The rows of M (n_out x width, width = n_in * n_s): bit j of row o is set when z bit j feeds
// output o. Row o is the next generator output whose low `width` bits are not all zero (after
// kRowDraws draws, the last one is kept), masked to `width` bits; the generator starts at `seed`.
inline std::vector<uint64_t> MatrixRows(uint64_t seed, int n_out, int width) {
  const uint64_t mask = width >= 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  std::vector<uint64_t> rows(static_cast<size_t>(n_out));
  uint64_t state = seed;
  for (uint64_t& row : rows) {
    for (int draw = 0; draw < kRowDraws; ++draw) {
      row = SplitMix64(&state) & mask;
      if (row) break;
    }
  }
  return rows;
}

inline int Parity(uint64_t v) { return __builtin_parityll(v); }

// The `width`-bit (1..32) field at bit offset `bit` of a packed LSB-first stream of `size` bytes;
// the caller guarantees the field lies inside the stream.
inline uint64_t ReadBits(const uint8_t* data, uint64_t size, uint64_t bit, int width) {
  const uint64_t byte = bit >> 3;
  uint64_t window = 0;
  const uint64_t avail = size - byte;
  std::memcpy(&window, data + byte, avail >= 8 ? 8 : avail);
  return (window >> (bit & 7)) & ((uint64_t{1} << width) - 1);
}

}  // namespace f2f
}  // namespace lsc

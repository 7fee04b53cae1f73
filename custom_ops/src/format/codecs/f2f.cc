// f2f: fixed-to-fixed XOR-gate coding (Park et al., ICLR 2022). The positions of the stored
// elements ("slots") are the lsc position layer (LscLayer); their values are coded bit plane by
// bit plane with the XOR network of f2f.h, plus patches for the bits the network missed.
// Params: the five of the layer, n_in, n_out, n_s, seed, segment_blocks, planes, fill,
// patch_code_bits, patch_split. Sections: block_mask, chunks, codes (the layer), inputs,
// patch_chunks (u64 [nchunks + 1][2]), patches. Spec: lsc_ort/codecs/f2f.py.
//
// Fixed rate: block t of coded plane p has its n_in input bits at bit (t * P + p) * n_in of
// `inputs` (P coded planes), so any block decodes from n_s * n_in bits found by arithmetic alone:
// chunks (and threads) decode their own blocks independently.
#include "format/codecs/f2f.h"

#include <algorithm>

#include "format/codecs/codecs.h"
#include "format/codecs/lsc_layer.h"

namespace lsc {
namespace {

struct F2fParams {
  int n_in = 1, n_out = 1, n_s = 1;
  int64_t order = f2f::kRowMajor;
  uint64_t segment = 1;
  uint32_t planes = 0, fill = 0;
  int plane_count = 0;
  int bits = 8;  // value bits per element
  int patch_width = 1;
  uint64_t patch_split = 1;
  uint64_t nblocks = 0;
};

class F2fDecoder : public MatrixDecoder {
 public:
  F2fDecoder(const Blob& blob, LscLayer layer, const F2fParams& p)
      : MatrixDecoder(blob), layer_(std::move(layer)), p_(p),
        rows_(f2f::MatrixRows(static_cast<uint64_t>(blob.params[f2f::kSeed]), p.n_out, p.n_in * p.n_s)) {
    for (int b = 0; b < p.bits; ++b) {
      if ((p.planes >> b) & 1) coded_.push_back(b);
    }
  }

  size_t num_chunks() const override { return layer_.num_chunks(); }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const uint64_t R = static_cast<uint64_t>(blob_.rows()), C = static_cast<uint64_t>(blob_.cols());
    std::vector<uint64_t> slots;  // flat C-order index of each slot of the chunk
    LSC_RETURN_IF_ERROR(layer_.DecodeChunk(chunk, [&](int64_t r, int64_t c, uint64_t) {
      slots.push_back(static_cast<uint64_t>(r) * C + static_cast<uint64_t>(c));
      return Status();
    }));
    if (layer_.block_rows() > 1) std::sort(slots.begin(), slots.end());
    // Decode in stream order, so that the slots of a block share its shift-register words.
    std::vector<std::pair<uint64_t, uint32_t>> stream(slots.size());  // (stream position, C-order rank)
    for (size_t i = 0; i < slots.size(); ++i) {
      stream[i] = {f2f::StreamPosition(slots[i] / C, slots[i] % C, R, C, p_.order), static_cast<uint32_t>(i)};
    }
    if (p_.order != f2f::kRowMajor) std::sort(stream.begin(), stream.end());
    std::vector<uint32_t> values(slots.size(), p_.fill);
    const Section& inputs = blob_.sections[3];
    const uint64_t n_out = static_cast<uint64_t>(p_.n_out), P = static_cast<uint64_t>(p_.plane_count);
    std::vector<uint64_t> z(coded_.size());
    uint64_t block = ~uint64_t{0};
    for (const auto& [q, rank] : stream) {
      const uint64_t t = q / n_out;
      if (t != block) {  // the shift-register contents of block t, one word per coded plane
        block = t;
        const uint64_t segment_start = t - t % p_.segment;
        for (size_t p = 0; p < coded_.size(); ++p) {
          uint64_t word = 0;
          for (int j = 0; j < p_.n_s && t - segment_start >= static_cast<uint64_t>(j); ++j) {
            const uint64_t bit = ((t - j) * P + p) * static_cast<uint64_t>(p_.n_in);
            word |= f2f::ReadBits(inputs.data, inputs.size, bit, p_.n_in) << (j * p_.n_in);
          }
          z[p] = word;
        }
      }
      const uint64_t row = rows_[q % n_out];
      uint32_t value = values[rank];
      for (size_t p = 0; p < coded_.size(); ++p) {
        value |= static_cast<uint32_t>(f2f::Parity(row & z[p])) << coded_[p];
      }
      values[rank] = value;
    }
    LSC_RETURN_IF_ERROR(ApplyPatches(chunk, &values));
    for (size_t i = 0; i < slots.size(); ++i) {
      if (values[i]) out->push_back(Entry{static_cast<int64_t>(slots[i] / C), static_cast<int64_t>(slots[i] % C), values[i]});
    }
    return Status();
  }

 private:
  // Flips the patched bits: patch position i names bit i % bits of the chunk's slot i / bits
  // (slots in C order).
  Status ApplyPatches(size_t chunk, std::vector<uint32_t>* values) const {
    const uint8_t* table = blob_.sections[4].data;
    const uint64_t code_begin = LoadU64(table + 16 * chunk), code_end = LoadU64(table + 16 * (chunk + 1));
    const uint64_t expected = LoadU64(table + 16 * (chunk + 1) + 8) - LoadU64(table + 16 * chunk + 8);
    const BitReader codes(blob_.sections[5].data, blob_.sections[5].size);
    const uint64_t bits = static_cast<uint64_t>(p_.bits);
    uint64_t count = 0;
    LSC_RETURN_IF_ERROR(ReadSriStream(codes, p_.patch_width, p_.patch_split, code_begin, code_end,
                                      values->size() * bits, "f2f: patches", chunk, [&](uint64_t position) {
      const uint64_t plane = position % bits;
      if (!((p_.planes >> plane) & 1)) {
        return Fail("f2f: patch ", position, " in chunk ", chunk, " flips bit ", plane, ", which is not a coded plane");
      }
      if (++count > expected) return Fail("f2f: chunk ", chunk, " has more patch codes than patches");
      (*values)[position / bits] ^= uint32_t{1} << plane;
      return Status();
    }));
    if (count != expected) return Fail("f2f: chunk ", chunk, " has fewer patch codes than patches");
    return Status();
  }

  LscLayer layer_;
  F2fParams p_;
  std::vector<uint64_t> rows_;  // the rows of M
  std::vector<int> coded_;      // the coded planes, ascending
};

}  // namespace

Status CreateF2fDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, f2f::kParamCount, 6));
  LscLayer layer;
  LSC_RETURN_IF_ERROR(LscLayer::Create(blob, &layer));
  if (layer.whole_blocks() && (blob.params[0] != 1 || blob.params[1] != 1)) {
    return Fail("f2f: without a coding layer (code_bits 0) the block must be 1x1, got ", blob.params[0], "x",
                blob.params[1]);
  }
  const uint64_t numel = static_cast<uint64_t>(blob.numel());
  if (layer.slots() > numel) return Fail("f2f: the chunk table declares ", layer.slots(), " slots, more than ", numel, " elements");
  if (layer.slots() >= (uint64_t{1} << 32)) return Fail("f2f: ", layer.slots(), " slots; at most 2^32 - 1 are supported");
  F2fParams p;
  p.bits = static_cast<int>(8 * blob.itemsize());
  int64_t v = 0;
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kNIn, 1, f2f::kMaxInputs, "n_in", &v));
  p.n_in = static_cast<int>(v);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kNOut, 1, f2f::kMaxOutputs, "n_out", &v));
  p.n_out = static_cast<int>(v);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kNS, 1, std::min<int64_t>(f2f::kMaxSteps, f2f::kMaxWidth / p.n_in), "n_s", &v));
  p.n_s = static_cast<int>(v);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kOrder, f2f::kRowMajor, f2f::kDiagonal, "order", &p.order));
  p.nblocks = (numel + static_cast<uint64_t>(p.n_out) - 1) / static_cast<uint64_t>(p.n_out);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kSegmentBlocks, 1, std::max<int64_t>(static_cast<int64_t>(p.nblocks), 1),
                            "segment_blocks", &v));
  p.segment = static_cast<uint64_t>(v);
  const int64_t all_planes = (int64_t{1} << p.bits) - 1;
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kPlanes, 0, all_planes, "planes", &v));
  p.planes = static_cast<uint32_t>(v);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kFill, 0, all_planes, "fill", &v));
  p.fill = static_cast<uint32_t>(v);
  if (p.fill & p.planes) return Fail("f2f: fill ", p.fill, " sets bits of coded planes ", p.planes);
  p.plane_count = __builtin_popcount(p.planes);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kPatchCodeBits, 1, 16, "patch_code_bits", &v));
  p.patch_width = static_cast<int>(v);
  LSC_RETURN_IF_ERROR(Param(blob, f2f::kPatchSplit, 1, (int64_t{1} << p.patch_width) - 1, "patch_split", &v));
  p.patch_split = static_cast<uint64_t>(v);

  // inputs: nblocks * P * n_in bits (nblocks < 2^62, P * n_in <= 2^10: checked, not assumed).
  int64_t input_bits_signed = 0;  // common/checked.h
  if (!MulExtent(static_cast<int64_t>(p.nblocks), static_cast<int64_t>(p.plane_count) * p.n_in, &input_bits_signed) ||
      static_cast<uint64_t>(input_bits_signed) > blob.sections[3].size * 8) {
    return Fail("f2f: inputs has ", blob.sections[3].size, " bytes, too few for ", p.nblocks, " blocks of ",
                p.plane_count, " planes x ", p.n_in, " bits");
  }
  const uint64_t input_bits = static_cast<uint64_t>(input_bits_signed);
  if (blob.sections[3].size != (input_bits + 7) / 8) {
    return Fail("f2f: inputs has ", blob.sections[3].size, " bytes, expected ", (input_bits + 7) / 8);
  }
  if (!PaddingBitsZero(blob.sections[3], input_bits)) return Fail("f2f: inputs has non-zero padding bits");

  LSC_RETURN_IF_ERROR(CheckChunkTable(blob, 4, layer.num_chunks(), "patch_chunks", "patch chunk"));
  const uint64_t ncodes = LoadU64(blob.sections[4].data + 16 * layer.num_chunks());
  const Section& patches = blob.sections[5];
  if (ncodes > patches.size * 8) return Fail("f2f: patches has ", patches.size, " bytes, too few for ", ncodes, " codes");
  const uint64_t expected = (ncodes * static_cast<uint64_t>(p.patch_width) + 7) / 8;
  if (patches.size != expected) {
    return Fail("f2f: patches has ", patches.size, " bytes, expected ", expected, " (", ncodes, " codes of ",
                p.patch_width, " bits)");
  }
  if (!PaddingBitsZero(patches, ncodes * static_cast<uint64_t>(p.patch_width))) {
    return Fail("f2f: patches has non-zero padding bits after the last code");
  }
  decoder->reset(new F2fDecoder(blob, std::move(layer), p));
  return Status();
}

}  // namespace lsc

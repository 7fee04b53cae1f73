// libFuzzer target: LSCConv's attribute checks and geometry (kernels/conv_geometry.h).
//
// Input layout (custom_ops/fuzz/make_corpus.py writes seeds in it): byte 0 bit 0 picks a 2-D
// (weight rank 4) or 1-D (rank 3) convolution, byte 1 the auto_pad mode, byte 2 which optional
// attributes are present (bit 0 kernel_shape, 1 strides, 2 dilations, 3 pads); then little-endian
// int64 values: group, the X shape, the weight shape, and the present attributes in that order.
// Missing bytes read as 0.
//
// Any geometry accepted must follow ONNX's output sizes and keep every intermediate value the
// convolution derives from it (input offsets, plane extents, output size) far from int64
// overflow: checked here in 128 bits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/conv_geometry.h"

using namespace lsc;

namespace {

using Wide = __int128;
constexpr Wide kLimit = Wide{1} << 62;

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

struct Reader {
  const uint8_t* data;
  size_t size, at = 0;
  int64_t Next() {
    uint8_t bytes[8] = {0};
    for (int i = 0; i < 8 && at < size; ++i) bytes[i] = data[at++];
    int64_t v;
    std::memcpy(&v, bytes, 8);
    return v;
  }
  std::vector<int64_t> Values(size_t count) {
    std::vector<int64_t> out(count);
    for (int64_t& v : out) v = Next();
    return out;
  }
};

// The ONNX output size of one dimension, exactly.
Wide OnnxOutput(const std::string& auto_pad, Wide in, Wide kernel, Wide stride, Wide dilation, Wide begin, Wide end) {
  const Wide extent = (kernel - 1) * dilation + 1;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") return (in + stride - 1) / stride;
  if (auto_pad == "VALID") begin = end = 0;
  const Wide span = in + begin + end - extent;
  return span < 0 ? -1 : span / stride + 1;
}

void CheckGeometry(const ConvAttributes& a, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                   const ConvGeometry& g) {
  const bool one_d = w.size() == 3;
  const size_t s = one_d ? 1 : 2;
  auto at = [](const std::vector<int64_t>& v, size_t i, int64_t fallback) { return v.empty() ? fallback : v[i]; };
  const Wide in_h = one_d ? 1 : x[2], in_w = x.back();
  const Wide pt = one_d ? 0 : at(a.pads, 0, 0), pb = one_d ? 0 : at(a.pads, 2, 0);
  const Wide pl = at(a.pads, one_d ? 0 : 1, 0), pr = at(a.pads, one_d ? 1 : 3, 0);
  const Wide stride_h = one_d ? 1 : at(a.strides, 0, 1), stride_w = at(a.strides, s - 1, 1);
  Check(g.out_height == OnnxOutput(a.auto_pad, in_h, g.kernel_h, stride_h, g.dilation_h, pt, pb), "ONNX height");
  Check(g.out_width == OnnxOutput(a.auto_pad, in_w, g.kernel_w, stride_w, g.dilation_w, pl, pr), "ONNX width");
  Check(g.stride_w == (g.out_width == 1 ? 1 : at(a.strides, s - 1, 1)), "stride used (1 for a single output)");
  Check(g.dilation_w == at(a.dilations, s - 1, 1), "dilation used");
  Check(g.out_height >= 1 && g.out_width >= 1, "outputs are not empty");
  Check(Wide{g.output_elements} == Wide{g.batch} * g.out_channels * g.out_height * g.out_width, "output size");
  // Input row oh * sh - pt + i * dh of an output row and tap, and likewise for columns.
  const Wide reach_h = Wide{g.kernel_h - 1} * g.dilation_h, reach_w = Wide{g.kernel_w - 1} * g.dilation_w;
  Check(Wide{g.out_height - 1} * g.stride_h + reach_h < kLimit, "input row offsets far from overflow");
  Check(Wide{g.out_width - 1} * g.stride_w + reach_w < kLimit, "input column offsets far from overflow");
  Check(g.pad_top >= 0 && g.pad_top < kLimit && g.pad_left >= 0 && g.pad_left < kLimit, "pads in range");
  // The phase planes (lsc_conv.cc) are sized from out + reach / stride and in + pad: these sums
  // must fit in int64 (PhasePlanes checks the products it forms from them).
  const Wide int64_end = Wide{1} << 63;
  Check(Wide{g.out_height} + reach_h / g.stride_h < int64_end && Wide{g.out_width} + reach_w / g.stride_w < int64_end,
        "plane extents fit in int64");
  Check(Wide{g.height} + g.pad_top < int64_end && Wide{g.width} + g.pad_left < int64_end, "padded input fits in int64");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const char* const kModes[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"};
  const size_t rank = (data[0] & 1) ? 4 : 3, spatial = rank - 2;
  ConvAttributes a;
  a.auto_pad = kModes[data[1] % 4];
  const uint8_t present = data[2];
  Reader reader{data + 3, size - 3};
  a.group = reader.Next();
  const std::vector<int64_t> x = reader.Values(rank), w = reader.Values(rank);
  if (present & 1) a.kernel_shape = reader.Values(spatial);
  if (present & 2) a.strides = reader.Values(spatial);
  if (present & 4) a.dilations = reader.Values(spatial);
  if (present & 8) a.pads = reader.Values(2 * spatial);
  for (int64_t d : w) {
    if (d < 0 || d >= kLimit) return 0;  // blob dims are below 2^62 (checked by ParseBlob)
  }
  for (int64_t d : x) {
    if (d < 0) return 0;  // onnxruntime's tensor dims are never negative
  }
  ConvGeometry g;
  if (!ComputeConvGeometry(a, x, w, &g).ok()) return 0;
  Check(CheckConvAttributes(a, w).ok(), "an accepted geometry has valid attributes");
  CheckGeometry(a, x, w, g);
  return 0;
}

// libFuzzer target: LSCConv's attribute checks and geometry (kernels/conv_geometry.h).
//
// Input layout (custom_ops/fuzz/make_corpus.py writes seeds in it): byte 0 bit 0 picks a 2-D
// (weight rank 4) or 1-D (rank 3) convolution, byte 1 the auto_pad mode, byte 2 which optional
// attributes are present (bit 0 kernel_shape, 1 strides, 2 dilations, 3 pads); then little-endian
// int64 values: group, the X shape, the weight shape, and the present attributes in that order.
// Missing bytes read as 0.
//
// Any geometry accepted must keep every access of the direct and im2col paths inside its
// buffers, with every intermediate value far from int64 overflow: checked here in 128 bits.
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
  Check(g.out_height == OnnxOutput(a.auto_pad, in_h, g.kernel_h, g.stride_h, g.dilation_h, pt, pb), "ONNX height");
  Check(g.out_width == OnnxOutput(a.auto_pad, in_w, g.kernel_w, g.stride_w, g.dilation_w, pl, pr), "ONNX width");
  Check(g.stride_w == at(a.strides, s - 1, 1) && g.dilation_w == at(a.dilations, s - 1, 1), "attributes used");
  Check(g.out_height >= 1 && g.out_width >= 1, "outputs are not empty");
  Check(Wide{g.output_elements} == Wide{g.batch} * g.out_channels * g.out_height * g.out_width, "output size");
  // Intermediates of the im2col path: input row oh * sh - pt + i * dh, and likewise for columns.
  const Wide reach_h = Wide{g.kernel_h - 1} * g.dilation_h, reach_w = Wide{g.kernel_w - 1} * g.dilation_w;
  Check(Wide{g.out_height - 1} * g.stride_h + reach_h < kLimit, "im2col row offsets far from overflow");
  Check(Wide{g.out_width - 1} * g.stride_w + reach_w < kLimit, "im2col column offsets far from overflow");
  Check(g.pad_top >= 0 && g.pad_top < kLimit && g.pad_left >= 0 && g.pad_left < kLimit, "pads in range");
  if (!g.planes_fit) return;
  // Direct path: every tap of every output row and column stays inside its phase plane, the
  // planes fill from input rows and columns in range, and their size is exact.
  Check(g.plane_h >= 1 && g.plane_w >= 1, "planes are not empty");
  Check(Wide{g.out_height - 1} + reach_h / g.stride_h < g.plane_h, "taps stay inside the plane rows");
  Check(Wide{g.out_width - 1} + reach_w / g.stride_w < g.plane_w, "taps stay inside the plane columns");
  const Wide elements = Wide{g.batch} * g.channels * g.stride_h * g.stride_w * g.plane_h * g.plane_w;
  Check(elements == g.plane_elements && elements < kLimit, "plane size exact and in range");
  if (g.planes_in_place) {
    Check(g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0, "in place without padding");
    Check(g.plane_h == g.height && g.plane_w == g.width, "in place planes are X");
  } else {
    Check(Wide{g.plane_h} * g.stride_h >= Wide{g.height} + g.pad_top, "planes cover the input rows");
    Check(Wide{g.plane_w} * g.stride_w >= Wide{g.width} + g.pad_left, "planes cover the input columns");
  }
  // In proportion to the input and output (what planes_fit promises).
  const Wide per_channel = Wide{g.stride_h} * g.stride_w * g.plane_h * g.plane_w;
  Check(per_channel <= 4 * (Wide{g.height} * g.width + Wide{g.out_height} * g.out_width) + (1 << 16),
        "planes in proportion to the input and output");
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

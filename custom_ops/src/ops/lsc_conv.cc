// LSCConv(X, W_blob[, B]) -> Y: ONNX Conv computed on the encoded weight. Per (image, group,
// tile of output pixels) the im2col rows of the tile form At [C/group * kH * kW, pixels] and the
// broadcast kernel writes the NCHW output rows directly: Y[m, pixels] = W^T At + B[m].
#include "ops/lsc_conv.h"

#include <algorithm>
#include <cstring>

#include "ops/op_util.h"
#include "ops/unified_ops.h"

namespace lsc {
namespace {

// Output rows at least this wide run as direct convolution (one output row per tile); narrower
// feature maps take im2col tiles across rows so the SIMD lanes stay full.
constexpr int64_t kDirectMinWidth = 16;

// The input of one image laid out for direct convolution: zero-padded and split into
// stride_h x stride_w phase planes, so that tap (c, i, j) of output row oh reads the contiguous
// run plane(c, phase(i, j)) + (oh + (i * dh) / sh) * Wq + (j * dw) / sw + [0, OW).
struct PhasePlanes {
  int64_t hq = 0, wq = 0;  // plane height and width
  bool in_place = false;   // stride 1 and no padding: X itself is the single plane

  explicit PhasePlanes(const ConvGeometry& g) {
    in_place = g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 &&
               g.out_height + (g.kernel_h - 1) * g.dilation_h <= g.height &&
               g.out_width + (g.kernel_w - 1) * g.dilation_w <= g.width;
    if (in_place) {
      hq = g.height;
      wq = g.width;
    } else {
      hq = std::max(g.out_height + (g.kernel_h - 1) * g.dilation_h / g.stride_h,
                    (g.height + g.pad_top + g.stride_h - 1) / g.stride_h);
      wq = std::max(g.out_width + (g.kernel_w - 1) * g.dilation_w / g.stride_w,
                    (g.width + g.pad_left + g.stride_w - 1) / g.stride_w);
    }
  }
  int64_t channel_size(const ConvGeometry& g) const { return g.stride_h * g.stride_w * hq * wq; }

  // Fills the planes of channel c of an image (`x` points at that channel's H x W plane).
  void Fill(const float* x, const ConvGeometry& g, float* out) const {
    for (int64_t ph = 0; ph < g.stride_h; ++ph) {
      for (int64_t pw = 0; pw < g.stride_w; ++pw) {
        float* plane = out + (ph * g.stride_w + pw) * hq * wq;
        // Column b of this phase reads input column b * sw + pw - pad_left.
        const int64_t first = std::max<int64_t>(0, (g.pad_left - pw + g.stride_w - 1) / g.stride_w);
        const int64_t last = std::min<int64_t>(wq, (g.width + g.pad_left - pw + g.stride_w - 1) / g.stride_w);
        for (int64_t a = 0; a < hq; ++a) {
          float* row = plane + a * wq;
          const int64_t r = a * g.stride_h + ph - g.pad_top;
          if (r < 0 || r >= g.height || first >= last) {
            std::fill(row, row + wq, 0.0f);
            continue;
          }
          std::fill(row, row + first, 0.0f);
          const float* in = x + r * g.width - g.pad_left + pw;
          if (g.stride_w == 1) {
            std::memcpy(row + first, in + first, static_cast<size_t>(last - first) * sizeof(float));
          } else {
            for (int64_t b = first; b < last; ++b) row[b] = in[b * g.stride_w];
          }
          std::fill(row + last, row + wq, 0.0f);
        }
      }
    }
  }

  // Offset of tap (c, i, j) from the start of a group's planes, for every weight row k.
  void RowOffsets(const ConvGeometry& g, int64_t channels, int64_t* out) const {
    const int64_t plane = hq * wq;
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const int64_t dy = i * g.dilation_h, dx = j * g.dilation_w;
          const int64_t phase = (dy % g.stride_h) * g.stride_w + dx % g.stride_w;
          *out++ = (c * g.stride_h * g.stride_w + phase) * plane + dy / g.stride_h * wq + dx / g.stride_w;
        }
      }
    }
  }
};

// At[r][q] for output pixels [first, first + count) of one image and group: the im2col rows of
// the tile, for feature maps too narrow for direct convolution.
void Im2Col(const float* x, const ConvGeometry& g, int64_t first, int64_t count, float* at, int64_t lda) {
  const int64_t cg = g.channels / g.group;
  for (int64_t c = 0; c < cg; ++c) {
    const float* plane = x + c * g.height * g.width;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        float* row = at + ((c * g.kernel_h + i) * g.kernel_w + j) * lda;
        int64_t oh = first / g.out_width, ow = first % g.out_width;
        for (int64_t q = 0; q < count;) {
          const int64_t run = std::min(count - q, g.out_width - ow);  // the rest of output row oh
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
          const int64_t iw0 = ow * g.stride_w - g.pad_left + j * g.dilation_w;
          for (int64_t t = 0; t < run; ++t) {
            const int64_t iw = iw0 + t * g.stride_w;
            row[q + t] = (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width) ? plane[ih * g.width + iw] : 0.0f;
          }
          q += run;
          ow = 0;
          ++oh;
        }
      }
    }
  }
}

}  // namespace

LscConvKernel::LscConvKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  auto_pad_ = AttributeOr(kernel_info, "auto_pad", std::string("NOTSET"));
  kernel_shape_ = AttributeOr(kernel_info, "kernel_shape", std::vector<int64_t>{});
  strides_ = AttributeOr(kernel_info, "strides", std::vector<int64_t>{});
  dilations_ = AttributeOr(kernel_info, "dilations", std::vector<int64_t>{});
  pads_ = AttributeOr(kernel_info, "pads", std::vector<int64_t>{});
  group_ = AttributeOr(kernel_info, "group", int64_t{1});
  kernels_ = &SelectKernels();
}

Status LscConvKernel::Init(const OrtKernelInfo* info) {
  if (auto_pad_ != "NOTSET" && auto_pad_ != "VALID" && auto_pad_ != "SAME_UPPER" && auto_pad_ != "SAME_LOWER") {
    return Fail("unsupported auto_pad '", auto_pad_, "'");
  }
  if (group_ < 1) return Fail("group must be >= 1, got ", group_);
  LSC_RETURN_IF_ERROR(LoadConstantWeight(Ort::ConstKernelInfo(info), 1, false, &weight_));
  if (weight_) LSC_RETURN_IF_ERROR(PrepareWeight(*weight_));
  return Status();
}

Status LscConvKernel::PrepareWeight(PackedWeight& weight) const {
  LSC_RETURN_IF_ERROR(CheckWeight(weight));
  const int64_t rows = weight.K() * group_;
  if (rows > 0xFFFFFFFFll) return Fail("C * kH * kW = ", rows, " is too large (at most 2^32 - 1)");
  weight.EmbedGroups(group_);
  return Status();
}

Status LscConvKernel::CheckWeight(const PackedWeight& weight) const {
  const std::vector<int64_t>& shape = weight.shape();
  if (shape.size() != 3 && shape.size() != 4) {
    return Fail("the weight blob holds a tensor of shape ", ShapeString(shape),
                "; LSCConv supports 1-D and 2-D convolutions (weights of rank 3 or 4)");
  }
  const size_t spatial = shape.size() - 2;
  if (!kernel_shape_.empty() && !std::equal(kernel_shape_.begin(), kernel_shape_.end(), shape.begin() + 2,
                                            shape.end())) {
    return Fail("kernel_shape ", ShapeString(kernel_shape_), " does not match the weight shape ", ShapeString(shape));
  }
  if (!kernel_shape_.empty() && kernel_shape_.size() != spatial) {
    return Fail("kernel_shape ", ShapeString(kernel_shape_), " does not match the weight shape ", ShapeString(shape));
  }
  for (const auto* attr : {&strides_, &dilations_}) {
    if (!attr->empty() && attr->size() != spatial) return Fail("strides and dilations need ", spatial, " values");
    for (int64_t v : *attr) if (v < 1) return Fail("strides and dilations must be >= 1, got ", ShapeString(*attr));
  }
  if (!pads_.empty() && pads_.size() != 2 * spatial) return Fail("pads needs ", 2 * spatial, " values");
  for (int64_t v : pads_) if (v < 0) return Fail("pads must be >= 0, got ", ShapeString(pads_));
  if (shape[0] % group_ != 0) return Fail("the weight has ", shape[0], " output channels, not divisible by group ", group_);
  return Status();
}

Status LscConvKernel::Geometry(const std::vector<int64_t>& x_shape, const PackedWeight& weight,
                               ConvGeometry* out) const {
  const std::vector<int64_t>& w = weight.shape();
  if (x_shape.size() != w.size()) {
    return Fail("X has shape ", ShapeString(x_shape), " but the weight ", ShapeString(w), " needs X of rank ", w.size());
  }
  const bool one_d = w.size() == 3;
  ConvGeometry g;
  g.group = group_;
  g.batch = x_shape[0];
  g.channels = x_shape[1];
  g.height = one_d ? 1 : x_shape[2];
  g.width = x_shape.back();
  g.out_channels = w[0];
  if (g.channels != w[1] * group_) {
    return Fail("X has ", g.channels, " channels but the weight ", ShapeString(w), " with group ", group_,
                " needs ", w[1] * group_);
  }
  g.kernel_h = one_d ? 1 : w[2];
  g.kernel_w = w.back();
  const size_t s = one_d ? 1 : 2;
  auto at = [&](const std::vector<int64_t>& v, size_t i, int64_t fallback) { return v.empty() ? fallback : v[i]; };
  g.stride_h = one_d ? 1 : at(strides_, 0, 1);
  g.stride_w = at(strides_, s - 1, 1);
  g.dilation_h = one_d ? 1 : at(dilations_, 0, 1);
  g.dilation_w = at(dilations_, s - 1, 1);
  int64_t pad[4] = {0, 0, 0, 0};  // top, left, bottom, right
  if (!one_d) {
    pad[0] = at(pads_, 0, 0), pad[1] = at(pads_, 1, 0), pad[2] = at(pads_, 2, 0), pad[3] = at(pads_, 3, 0);
  } else {
    pad[1] = at(pads_, 0, 0), pad[3] = at(pads_, 1, 0);
  }
  const int64_t in[2] = {g.height, g.width}, kernel[2] = {g.kernel_h, g.kernel_w};
  const int64_t stride[2] = {g.stride_h, g.stride_w}, dilation[2] = {g.dilation_h, g.dilation_w};
  int64_t out_dims[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t extent = (kernel[d] - 1) * dilation[d] + 1;
    if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
      out_dims[d] = (in[d] + stride[d] - 1) / stride[d];
      const int64_t total = std::max<int64_t>(0, (out_dims[d] - 1) * stride[d] + extent - in[d]);
      pad[d] = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
      pad[d + 2] = total - pad[d];
    } else {
      if (auto_pad_ == "VALID") pad[d] = pad[d + 2] = 0;
      const int64_t span = in[d] + pad[d] + pad[d + 2] - extent;
      out_dims[d] = span < 0 ? 0 : span / stride[d] + 1;
    }
  }
  g.pad_top = pad[0];
  g.pad_left = pad[1];
  g.out_height = out_dims[0];
  g.out_width = out_dims[1];
  *out = g;
  return Status();
}

Status LscConvKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  std::shared_ptr<PackedWeight> weight = weight_;
  if (!weight) {
    LSC_RETURN_IF_ERROR(LoadWeight(context.GetInput(1), false, &weight));
    LSC_RETURN_IF_ERROR(PrepareWeight(*weight));
  }
  Ort::ConstValue x_value = context.GetInput(0);
  const auto x_info = x_value.GetTensorTypeAndShapeInfo();
  ConvGeometry g;
  LSC_RETURN_IF_ERROR(Geometry(x_info.GetShape(), *weight, &g));
  const float* bias = nullptr;
  std::vector<float> bias_buffer;
  LSC_RETURN_IF_ERROR(ReadBias(context, 2, g.out_channels, "B", &bias_buffer, &bias));
  const bool one_d = weight->shape().size() == 3;
  std::vector<int64_t> y_shape = {g.batch, g.out_channels};
  if (!one_d) y_shape.push_back(g.out_height);
  y_shape.push_back(g.out_width);
  Ort::UnownedValue y_value = context.GetOutput(0, y_shape);
  const int64_t pixels = g.out_height * g.out_width, image = g.channels * g.height * g.width;
  const int64_t y_size = g.batch * g.out_channels * pixels;
  if (y_size == 0) return Status();

  const bool half = x_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  const float* x = nullptr;
  float* y = nullptr;
  if (half) {
    float* x_float = ThreadScratch(kScratchHalfIn, static_cast<size_t>(g.batch * image));
    HalfToFloat(x_value.GetTensorData<Ort::Float16_t>(), x_float, static_cast<size_t>(g.batch * image));
    x = x_float;
    y = ThreadScratch(kScratchHalfOut, static_cast<size_t>(y_size));
  } else {
    x = x_value.GetTensorData<float>();
    y = y_value.GetTensorMutableData<float>();
  }

  // The weight is block-diagonal over the groups (PrepareWeight): row k of the product is tap
  // (c, i, j) of input channel c of the whole image, and every tile covers all output channels,
  // split into column blocks for parallelism.
  const KernelSet& kernels = *kernels_;
  const ColumnView view = weight->columns().view();
  const int64_t T = kernels.batch_tile, M = g.out_channels;
  const int64_t rows = g.channels * g.kernel_h * g.kernel_w;
  int64_t* offsets = ThreadScratch<int64_t>(kScratchOffsets, static_cast<size_t>(rows));
  auto column_blocks = [&](int64_t tiles) {
    const int64_t wanted = (static_cast<int64_t>(ParallelBatches(1 << 20)) * 4 + tiles - 1) / tiles;
    return std::min(M, std::max<int64_t>(1, wanted));
  };
  if (g.out_width >= kDirectMinWidth) {
    // Direct: tiles are (image, output row, run of up to T output columns).
    const PhasePlanes planes(g);
    const int64_t channel = planes.in_place ? g.height * g.width : planes.channel_size(g);
    const float* input = x;
    if (!planes.in_place) {
      float* padded = ThreadScratch(kScratchPlanes, static_cast<size_t>(g.batch * g.channels * channel));
      LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(g.batch * g.channels), [&](size_t item) {
        planes.Fill(x + static_cast<int64_t>(item) * g.height * g.width, g, padded + static_cast<int64_t>(item) * channel);
      }));
      input = padded;
    }
    planes.RowOffsets(g, g.channels, offsets);
    const int64_t runs = (g.out_width + T - 1) / T, tiles = g.batch * g.out_height * runs;
    const int64_t blocks = column_blocks(tiles), per_block = (M + blocks - 1) / blocks;
    LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(tiles * blocks), [&](size_t item) {
      const int64_t block = static_cast<int64_t>(item) % blocks;
      int64_t rest = static_cast<int64_t>(item) / blocks;
      const int64_t run = rest % runs;
      rest /= runs;
      const int64_t oh = rest % g.out_height, b = rest / g.out_height;
      const int64_t ow0 = run * T, count = std::min(T, g.out_width - ow0);
      const float* base = input + b * g.channels * channel + oh * planes.wq + ow0;
      float* out = y + b * M * pixels + oh * g.out_width + ow0;
      kernels.spmm_tile(view, block * per_block, std::min(M, (block + 1) * per_block), base, offsets, count, 1.0f,
                        bias, out, pixels);
    }));
  } else {
    // im2col: tiles are (image, run of up to T output pixels across rows).
    for (int64_t k = 0; k < rows; ++k) offsets[k] = k * T;
    const int64_t runs = (pixels + T - 1) / T, tiles = g.batch * runs;
    const int64_t blocks = column_blocks(tiles), per_block = (M + blocks - 1) / blocks;
    const int64_t cg = g.channels / g.group;
    LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(tiles), [&](size_t item) {
      const int64_t run = static_cast<int64_t>(item) % runs, b = static_cast<int64_t>(item) / runs;
      const int64_t first = run * T, count = std::min(T, pixels - first);
      float* cols = ThreadScratch(kScratchCols, static_cast<size_t>(rows * T));
      for (int64_t group = 0; group < g.group; ++group) {
        Im2Col(x + b * image + group * cg * g.height * g.width, g, first, count, cols + group * (rows / g.group) * T,
               T);
      }
      for (int64_t block = 0; block < blocks; ++block) {
        kernels.spmm_tile(view, block * per_block, std::min(M, (block + 1) * per_block), cols, offsets, count, 1.0f,
                          bias, y + b * M * pixels + first, pixels);
      }
    }));
  }
  LSC_RETURN_IF_ERROR(AddUnifiedConv(raw_context, *weight, g, x, y));  // mswu: unified blocks, one multiply each
  if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(y_size));
  return Status();
}

}  // namespace lsc

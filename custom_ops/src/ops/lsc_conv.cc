// LSCConv(X, W_blob[, B]) -> Y: ONNX Conv computed on the encoded weight. Per (image, group,
// tile of output pixels) the im2col rows of the tile form At [C/group * kH * kW, pixels] and the
// broadcast kernel writes the NCHW output rows directly: Y[m, pixels] = W^T At + B[m].
#include "ops/lsc_conv.h"

#include <algorithm>
#include <cstring>

#include "ops/op_util.h"

namespace lsc {
namespace {

constexpr const char* kOp = "LSCConv";

// Builds At[r][q] for the `count` output pixels from `first` of one image and group.
void Im2Col(const float* x, const ConvGeometry& g, int64_t first, int64_t count, float* at, int64_t lda) {
  const int64_t cg = g.channels / g.group;
  for (int64_t c = 0; c < cg; ++c) {
    const float* plane = x + c * g.height * g.width;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        float* row = at + ((c * g.kernel_h + i) * g.kernel_w + j) * lda;
        for (int64_t q = 0; q < count; ++q) {
          const int64_t p = first + q, oh = p / g.out_width, ow = p % g.out_width;
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
          const int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
          row[q] = (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width) ? plane[ih * g.width + iw] : 0.0f;
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
  if (weight_) LSC_RETURN_IF_ERROR(CheckWeight(*weight_));
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

OrtStatusPtr LscConvKernel::ComputeV2(OrtKernelContext* context) {
  try {
    Status status = Compute(context);
    return status.ok() ? nullptr : MakeStatus(kOp, node_, status.message());
  } catch (const std::exception& e) {
    return MakeStatus(kOp, node_, e.what());
  }
}

Status LscConvKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  std::shared_ptr<PackedWeight> weight = weight_;
  if (!weight) {
    LSC_RETURN_IF_ERROR(LoadWeight(context.GetInput(1), false, &weight));
    LSC_RETURN_IF_ERROR(CheckWeight(*weight));
  }
  Ort::ConstValue x_value = context.GetInput(0);
  const auto x_info = x_value.GetTensorTypeAndShapeInfo();
  ConvGeometry g;
  LSC_RETURN_IF_ERROR(Geometry(x_info.GetShape(), *weight, &g));
  const float* bias = nullptr;
  std::vector<float> bias_buffer;
  if (context.GetInputCount() > 2) {
    Ort::ConstValue b_value = context.GetInput(2);
    if (b_value) {
      const auto b_info = b_value.GetTensorTypeAndShapeInfo();
      if (b_info.GetShape() != std::vector<int64_t>{g.out_channels}) {
        return Fail("B has shape ", ShapeString(b_info.GetShape()), ", expected [", g.out_channels, "]");
      }
      if (b_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
        bias_buffer.resize(static_cast<size_t>(g.out_channels));
        HalfToFloat(b_value.GetTensorData<Ort::Float16_t>(), bias_buffer.data(), bias_buffer.size());
        bias = bias_buffer.data();
      } else {
        bias = b_value.GetTensorData<float>();
      }
    }
  }
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

  const KernelSet& kernels = *kernels_;
  const ColumnView view = weight->columns().view();
  const int64_t T = kernels.batch_tile, tiles = (pixels + T - 1) / T;
  const int64_t cg = g.channels / g.group, mg = g.out_channels / g.group;
  const int64_t rows = cg * g.kernel_h * g.kernel_w;
  const bool pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
                         g.pad_top == 0 && g.pad_left == 0 && g.out_height == g.height && g.out_width == g.width;
  const int64_t items = g.batch * g.group * tiles;
  LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(items), [&](size_t item) {
    const int64_t tile = static_cast<int64_t>(item) % tiles;
    const int64_t group = static_cast<int64_t>(item) / tiles % g.group;
    const int64_t b = static_cast<int64_t>(item) / tiles / g.group;
    const int64_t first = tile * T, count = std::min(T, pixels - first);
    const float* x_group = x + b * image + group * cg * g.height * g.width;
    const float* at = x_group + first;  // a 1x1 convolution reads X itself as At
    int64_t lda = g.height * g.width;
    if (!pointwise) {
      float* cols = ThreadScratch(kScratchCols, static_cast<size_t>(rows * T));
      Im2Col(x_group, g, first, count, cols, T);
      at = cols;
      lda = T;
    }
    float* y_image = y + b * g.out_channels * pixels;
    kernels.spmm_tile(view, group * mg, (group + 1) * mg, at, lda, count, 1.0f, bias, y_image + first, pixels);
  }));
  if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(y_size));
  return Status();
}

OrtStatusPtr LscConvOp::CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
  std::unique_ptr<LscConvKernel> instance;
  try {
    instance = std::make_unique<LscConvKernel>(info);
    Status status = instance->Init(info);
    if (!status.ok()) return MakeStatus(kOp, instance->node(), status.message());
  } catch (const std::exception& e) {
    return MakeStatus(kOp, instance ? instance->node() : "?", e.what());
  }
  *kernel = instance.release();
  return nullptr;
}

}  // namespace lsc

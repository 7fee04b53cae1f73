#include "kernels/conv_geometry.h"

#include <algorithm>

#include "common/checked.h"

namespace lsc {
namespace {

int64_t At(const std::vector<int64_t>& values, size_t index, int64_t fallback) {
  return values.empty() ? fallback : values[index];
}

// Output size and leading pad of one spatial dimension.
Status OutputSize(const std::string& auto_pad, int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                  int64_t pad_begin, int64_t pad_end, const char* dim, int64_t* out, int64_t* pad) {
  int64_t extent = 0;
  if (!MulExtent(kernel - 1, dilation, &extent) || !AddExtent(extent, 1, &extent)) {
    return Fail("the kernel's ", dim, " extent (", kernel, " - 1) * dilation ", dilation,
                " + 1 is too large (at most 2^62)");
  }
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    *out = in / stride + (in % stride != 0);
    int64_t total = 0;
    if (*out > 0) {  // (out - 1) * stride <= in - 1
      if (!AddExtent((*out - 1) * stride, extent, &total)) return Fail("the ", dim, " padding is too large");
      total = std::max<int64_t>(0, total - in);
    }
    *pad = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
  } else {
    if (auto_pad == "VALID") pad_begin = pad_end = 0;
    int64_t padded = 0;
    if (!AddExtent(in, pad_begin, &padded) || !AddExtent(padded, pad_end, &padded)) {
      return Fail("the padded input ", dim, " ", in, " + ", pad_begin, " + ", pad_end, " is too large (at most 2^62)");
    }
    if (padded < extent) {
      return Fail("the kernel's ", dim, " extent ", extent, " exceeds the padded input ", dim, " ", padded,
                  ": the output would be empty");
    }
    *out = (padded - extent) / stride + 1;
    *pad = pad_begin;
  }
  if (*out == 0) return Fail("the input ", dim, " is 0: the output would be empty");
  return Status();
}

}  // namespace

Status CheckConvAttributes(const ConvAttributes& a, const std::vector<int64_t>& shape) {
  if (a.auto_pad != "NOTSET" && a.auto_pad != "VALID" && a.auto_pad != "SAME_UPPER" && a.auto_pad != "SAME_LOWER") {
    return Fail("unsupported auto_pad '", a.auto_pad, "'");
  }
  if (a.auto_pad != "NOTSET" && !a.pads.empty()) {
    return Fail("auto_pad '", a.auto_pad, "' and pads cannot both be set (as in onnxruntime's Conv)");
  }
  if (a.group < 1) return Fail("group must be >= 1, got ", a.group);
  if (shape.size() != 3 && shape.size() != 4) {
    return Fail("the weight blob holds a tensor of shape ", ShapeString(shape),
                "; LSCConv supports 1-D and 2-D convolutions (weights of rank 3 or 4)");
  }
  const size_t spatial = shape.size() - 2;
  const std::vector<int64_t> kernel(shape.begin() + 2, shape.end());
  for (int64_t k : kernel) {
    if (k < 1) return Fail("the weight ", ShapeString(shape), " has a kernel dim of 0; Conv needs kernel dims >= 1");
  }
  if (!a.kernel_shape.empty() && a.kernel_shape != kernel) {
    return Fail("kernel_shape ", ShapeString(a.kernel_shape), " does not match the weight shape ", ShapeString(shape));
  }
  for (const auto* attr : {&a.strides, &a.dilations}) {
    if (!attr->empty() && attr->size() != spatial) return Fail("strides and dilations need ", spatial, " values");
    for (int64_t v : *attr) if (v < 1) return Fail("strides and dilations must be >= 1, got ", ShapeString(*attr));
  }
  if (!a.pads.empty() && a.pads.size() != 2 * spatial) return Fail("pads needs ", 2 * spatial, " values");
  for (int64_t v : a.pads) if (v < 0) return Fail("pads must be >= 0, got ", ShapeString(a.pads));
  if (shape[0] % a.group != 0) {
    return Fail("the weight has ", shape[0], " output channels, not divisible by group ", a.group);
  }
  return Status();
}

Status ComputeConvGeometry(const ConvAttributes& a, const std::vector<int64_t>& x_shape,
                           const std::vector<int64_t>& w, ConvGeometry* out) {
  LSC_RETURN_IF_ERROR(CheckConvAttributes(a, w));
  if (x_shape.size() != w.size()) {
    return Fail("X has shape ", ShapeString(x_shape), " but the weight ", ShapeString(w), " needs X of rank ", w.size());
  }
  int64_t x_elements = 0;
  LSC_RETURN_IF_ERROR(CheckedProduct(x_shape, &x_elements, "X"));
  const bool one_d = w.size() == 3;
  ConvGeometry g;
  g.group = a.group;
  g.batch = x_shape[0];
  g.channels = x_shape[1];
  g.height = one_d ? 1 : x_shape[2];
  g.width = x_shape.back();
  g.out_channels = w[0];
  int64_t channels = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(w[1], a.group, &channels, "C/group * group"));
  if (g.channels != channels) {
    return Fail("X has ", g.channels, " channels but the weight ", ShapeString(w), " with group ", a.group, " needs ",
                channels);
  }
  g.kernel_h = one_d ? 1 : w[2];
  g.kernel_w = w.back();
  const size_t s = one_d ? 1 : 2;
  g.stride_h = one_d ? 1 : At(a.strides, 0, 1);
  g.stride_w = At(a.strides, s - 1, 1);
  g.dilation_h = one_d ? 1 : At(a.dilations, 0, 1);
  g.dilation_w = At(a.dilations, s - 1, 1);
  int64_t pad[4] = {0, 0, 0, 0};  // top, left, bottom, right
  if (!one_d) {
    pad[0] = At(a.pads, 0, 0), pad[1] = At(a.pads, 1, 0), pad[2] = At(a.pads, 2, 0), pad[3] = At(a.pads, 3, 0);
  } else {
    pad[1] = At(a.pads, 0, 0), pad[3] = At(a.pads, 1, 0);
  }
  LSC_RETURN_IF_ERROR(OutputSize(a.auto_pad, g.height, g.kernel_h, g.stride_h, g.dilation_h, pad[0], pad[2], "height",
                                 &g.out_height, &g.pad_top));
  LSC_RETURN_IF_ERROR(OutputSize(a.auto_pad, g.width, g.kernel_w, g.stride_w, g.dilation_w, pad[1], pad[3], "width",
                                 &g.out_width, &g.pad_left));
  LSC_RETURN_IF_ERROR(CheckedProduct({g.batch, g.out_channels, g.out_height, g.out_width}, &g.output_elements,
                                     "the output"));
  // A stride along a dimension with one output does not matter (only output 0 is read, and the
  // pads are set): 1 keeps the direct path's phase planes from multiplying by a huge stride.
  if (g.out_height == 1) g.stride_h = 1;
  if (g.out_width == 1) g.stride_w = 1;
  *out = g;
  return Status();
}

}  // namespace lsc

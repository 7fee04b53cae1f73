// The shape logic of LSCConv, free of onnxruntime so the fuzzer can drive it: attribute checks
// (ONNX Conv's rules) and the geometry of one run, with every size and offset computed by the
// checked arithmetic of common/checked.h. Attributes are untrusted: a huge dilation, stride or
// pad must fail here or yield a geometry whose every access stays inside its buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace lsc {

// The Conv attributes of a node; empty lists take ONNX's defaults.
struct ConvAttributes {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  int64_t group = 1;
};

// Spatial geometry of a convolution, 1-D convolutions as 2-D with height 1.
struct ConvGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;        // input
  int64_t out_channels = 0, out_height = 0, out_width = 0;       // output
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1, pad_top = 0, pad_left = 0;
  int64_t group = 1;
  int64_t output_elements = 0;  // batch * out_channels * out_height * out_width
  // (A stride is 1 along a dimension with a single output: it does not change that output.)
};

// Checks attributes against ONNX Conv and a weight of shape [M, C/group, kH, kW] ([M, C/group, k]
// for 1-D): rank, kernel_shape, kernel dims >= 1, strides and dilations >= 1, pads >= 0, the
// attribute lengths, group >= 1 dividing M, and auto_pad (without pads unless NOTSET).
Status CheckConvAttributes(const ConvAttributes& attributes, const std::vector<int64_t>& weight_shape);

// The geometry of convolving X of shape `x_shape` (NCHW, or NCW) with that weight. Fails, naming
// the problem, when shapes disagree or a size overflows, and, as onnxruntime's Conv does, when
// an output dimension would be empty (the kernel's extent exceeds the padded input). On success
// every extent derived from it is below 2^62: the padded input sizes, the kernel's extents
// (k - 1) * dilation + 1, (out - 1) * stride + extent, and the output's element count; so sums of
// two of them fit in int64.
Status ComputeConvGeometry(const ConvAttributes& attributes, const std::vector<int64_t>& x_shape,
                           const std::vector<int64_t>& weight_shape, ConvGeometry* out);

}  // namespace lsc

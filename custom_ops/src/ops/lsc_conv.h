// LSCConv: ONNX Conv (1-D and 2-D, NCHW) with the weight decoded from an lsc-ort blob.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/op_util.h"
#include "ops/packed_weight.h"

namespace lsc {

// Spatial geometry of a convolution, 1-D convolutions as 2-D with height 1.
struct ConvGeometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;        // input
  int64_t out_channels = 0, out_height = 0, out_width = 0;       // output
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1, pad_top = 0, pad_left = 0;
  int64_t group = 1;
};

// How one input geometry is computed: phase planes, virtual positions, the tiled layout of the
// weight for that geometry's tap offsets (lsc_conv.cc).
struct ConvPlan;

class LscConvKernel {
 public:
  static constexpr const char* kOpName = "LSCConv";
  static constexpr size_t kInputCount = 4;  // X, W_blob, B, Z (residual added before the activation)
  explicit LscConvKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchCols = 8, kScratchHalfIn, kScratchHalfOut, kScratchPlanes, kScratchOffsets, kScratchHalfZ };
  Status CheckWeight(const PackedWeight& weight) const;
  Status PrepareWeight(PackedWeight& weight) const;
  Status Geometry(const std::vector<int64_t>& x_shape, const PackedWeight& weight, ConvGeometry* g) const;
  // The plan for geometry `g` (cached per input height and width when the weight is a constant).
  Status Plan(const ConvGeometry& g, const PackedWeight& weight, bool cache, std::shared_ptr<const ConvPlan>* plan);

  std::string node_;
  std::string auto_pad_;
  std::string activation_;  // "" or "Relu"
  std::vector<int64_t> kernel_shape_, strides_, dilations_, pads_;
  int64_t group_ = 1;
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;
  std::mutex plans_mutex_;
  std::vector<std::shared_ptr<const ConvPlan>> plans_;  // a few recent input geometries
};

using LscConvOp = LscOp<LscConvKernel>;

}  // namespace lsc

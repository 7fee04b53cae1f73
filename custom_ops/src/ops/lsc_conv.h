// LSCConv: ONNX Conv (1-D and 2-D, NCHW) with the weight decoded from an lsc-ort blob.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/op_util.h"
#include "ops/packed_weight.h"

namespace lsc {

class LscConvKernel {
 public:
  static constexpr const char* kOpName = "LSCConv";
  explicit LscConvKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchCols = 8, kScratchHalfIn, kScratchHalfOut, kScratchPlanes, kScratchOffsets };
  Status PrepareWeight(PackedWeight& weight) const;

  std::string node_;
  ConvAttributes attributes_;
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;
};

using LscConvOp = LscOp<LscConvKernel>;

}  // namespace lsc

// The unified blocks of mswu weights in LSCMatMul and LSCConv (kernels/unified_layout.h): each
// unified block costs one multiply, its signed inputs summed first.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "onnxruntime_cxx_api.h"
#include "ops/lsc_conv.h"
#include "ops/packed_weight.h"

namespace lsc {

// LSCMatMul runs the unified blocks with one multiply each for up to this many rows of A; more
// rows run every non-zero of the weight on the batch kernels (PackedWeight::plain), which
// measured faster from 4-6 rows on (benchmarks/bench_mswu.py).
constexpr int64_t kUnifiedMatMulRows = 4;

// LSCMatMul: adds alpha * (a [M, K] @ W_unified) to y [M, N] (the free non-zeros and the bias are
// already in it), from the signed sums of kUnifiedMatMulRows rows at a time. Nothing for other
// weights.
Status AddUnifiedMatMul(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M, float alpha,
                        float* y);

// LSCConv: adds the unified blocks' share to y [N, M, pixels] (the other weights are already in
// it), from x [N, C, H, W] and the convolution's geometry. Nothing for other weights.
Status AddUnifiedConv(OrtKernelContext* context, const PackedWeight& weight, const ConvGeometry& g, const float* x,
                      float* y);

}  // namespace lsc

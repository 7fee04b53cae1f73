// LSCMatMul(A, W_blob[, bias]) -> Y = alpha * (A @ W) + bias, computed on the encoded weight.
// Contract: lsc_ort/ops.py.
#include "ops/lsc_matmul.h"

#include <algorithm>
#include <cstring>

#include "ops/op_util.h"
#include "ops/unified_ops.h"

namespace lsc {
namespace {

// Up to this many rows of A run on the windowed layout (or as column dot products, when the
// kernel variant has no windowed kernel); more rows take the batched product.
constexpr int64_t kWindowedBatch = 12;
constexpr int64_t kColumnsBatch = 3;
// Output columns per task of the batched product.
constexpr int64_t kColumnBlock = 32;

}  // namespace

LscMatMulKernel::LscMatMulKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  alpha_ = AttributeOr(kernel_info, "alpha", 1.0f);
  trans_b_ = AttributeOr(kernel_info, "transB", int64_t{0});
  kernels_ = &SelectKernels();
}

Status LscMatMulKernel::Init(const OrtKernelInfo* info) {
  if (trans_b_ != 0 && trans_b_ != 1) return Fail("attribute transB must be 0 or 1, got ", trans_b_);
  LSC_RETURN_IF_ERROR(LoadConstantWeight(Ort::ConstKernelInfo(info), 1, trans_b_ == 0, &weight_));
  if (weight_) LSC_RETURN_IF_ERROR(CheckWeight(*weight_));
  return Status();
}

Status LscMatMulKernel::CheckWeight(const PackedWeight& weight) const {
  if (weight.shape().size() != 2) {
    return Fail("the weight blob holds a tensor of rank ", weight.shape().size(), "; LSCMatMul needs a 2-D matrix");
  }
  return Status();
}

Status LscMatMulKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  std::shared_ptr<PackedWeight> weight = weight_;
  if (!weight) {  // the blob is a run-time input: decode it for this run
    LSC_RETURN_IF_ERROR(LoadWeight(context.GetInput(1), trans_b_ == 0, &weight));
    LSC_RETURN_IF_ERROR(CheckWeight(*weight));
  }
  const int64_t K = weight->K(), N = weight->N();
  Ort::ConstValue a_value = context.GetInput(0);
  const auto a_info = a_value.GetTensorTypeAndShapeInfo();
  const std::vector<int64_t> a_shape = a_info.GetShape();
  if (a_shape.empty()) return Fail("A must have rank >= 1, got a scalar");
  if (a_shape.back() != K) {
    return Fail("A has shape ", ShapeString(a_shape), " but the weight is ", K, "x", N, ": A's last dimension must be ",
                K);
  }
  const float* bias = nullptr;
  std::vector<float> bias_buffer;
  LSC_RETURN_IF_ERROR(ReadBias(context, 2, N, "bias", &bias_buffer, &bias));
  std::vector<int64_t> y_shape(a_shape.begin(), a_shape.end() - 1);
  y_shape.push_back(N);
  Ort::UnownedValue y_value = context.GetOutput(0, y_shape);
  int64_t M = 1;
  for (size_t i = 0; i + 1 < a_shape.size(); ++i) M *= a_shape[i];
  if (M == 0 || N == 0) return Status();

  const bool half = a_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  const float* a = nullptr;
  float* y = nullptr;
  if (half) {
    float* a_float = ThreadScratch(kScratchHalfIn, static_cast<size_t>(M * K));
    HalfToFloat(a_value.GetTensorData<Ort::Float16_t>(), a_float, static_cast<size_t>(M * K));
    a = a_float;
    y = ThreadScratch(kScratchHalfOut, static_cast<size_t>(M * N));
  } else {
    a = a_value.GetTensorData<float>();
    y = y_value.GetTensorMutableData<float>();
  }
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.0f;
    }
  } else if (weight->unified() != nullptr) {  // mswu: unified blocks, one multiply each (ops/unified_ops.cc)
    LSC_RETURN_IF_ERROR(UnifiedMatMul(raw_context, *weight, *kernels_, a, M, alpha_, bias, y));
  } else if (M <= (UseWindowed(*weight) ? kWindowedBatch : kColumnsBatch)) {
    LSC_RETURN_IF_ERROR(SmallBatch(raw_context, *weight, a, M, bias, y));
  } else {
    LSC_RETURN_IF_ERROR(LargeBatch(raw_context, *weight, a, M, bias, y));
  }
  if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(M * N));
  return Status();
}

// Few rows: the windowed layout, up to kWindowedRows rows per pass; without it, column dot
// products row by row.
Status LscMatMulKernel::SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, float* y) const {
  const int64_t K = weight.K(), N = weight.N();
  const KernelSet& kernels = *kernels_;
  if (UseWindowed(weight)) {
    const WindowedLayout& layout = weight.windowed(kernels);
    const WindowedView view = layout.view();
    const int64_t ldx = layout.windows * layout.window + layout.window;  // padded, zero beyond K
    const int64_t rows = std::min<int64_t>(M, kWindowedRows);
    float* x = ThreadScratch(kScratchRow, static_cast<size_t>(rows * ldx));
    const int64_t groups_per_task = std::max<int64_t>(1, layout.groups / 64);
    const int64_t tasks = (layout.groups + groups_per_task - 1) / groups_per_task;
    for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
      const int64_t count = std::min<int64_t>(kWindowedRows, M - m0);
      for (int64_t r = 0; r < count; ++r) {
        std::memcpy(x + r * ldx, a + (m0 + r) * K, static_cast<size_t>(K) * sizeof(float));
        std::fill(x + r * ldx + K, x + (r + 1) * ldx, 0.0f);
      }
      LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
        const int64_t g0 = static_cast<int64_t>(t) * groups_per_task;
        kernels.spmv_windowed(view, g0, std::min(layout.groups, g0 + groups_per_task), x, ldx, count, alpha_, bias,
                              y + m0 * N, N);
      }));
    }
    return Status();
  }
  const ColumnView view = weight.columns().view();
  const int64_t tasks = (N + kColumnBlock - 1) / kColumnBlock;
  for (int64_t m = 0; m < M; ++m) {
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
      const int64_t n0 = static_cast<int64_t>(t) * kColumnBlock;
      kernels.spmv_columns(view, n0, std::min(N, n0 + kColumnBlock), a + m * K, alpha_, bias, y + m * N);
    }));
  }
  return Status();
}

bool LscMatMulKernel::UseWindowed(const PackedWeight& weight) const {
  return kernels_->spmv_windowed != nullptr &&
         WindowedLayoutWorthwhile(weight.columns(), kernels_->lanes, kernels_->window);
}

// Batch tiles of up to T rows: At = A_tile^T [K, L]; Yt [N, L] = alpha * W^T At + bias;
// Y_tile = Yt^T. L, the row stride of the tiles, is T or, for a single short tile, the rows
// rounded up to 16, which keeps a small batch's At compact in cache.
Status LscMatMulKernel::LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, float* y) const {
  const KernelSet& kernels = *kernels_;
  const int64_t K = weight.K(), N = weight.N(), T = kernels.batch_tile;
  const int64_t tiles = (M + T - 1) / T;
  const int64_t L = tiles == 1 ? std::min(T, (M + 15) / 16 * 16) : T;
  float* at = ThreadScratch(kScratchAt, static_cast<size_t>(tiles * K * L));
  float* yt = ThreadScratch(kScratchYt, static_cast<size_t>(tiles * N * L));
  auto rows_in = [&](int64_t tile) { return std::min(T, M - tile * T); };
  LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles), [&](size_t t) {
    const int64_t tile = static_cast<int64_t>(t);
    kernels.transpose(a + tile * T * K, K, rows_in(tile), K, at + tile * K * L, L);
  }));
  int64_t* offsets = ThreadScratch<int64_t>(kScratchOffsets, static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) offsets[k] = k * L;
  const ColumnView view = weight.columns().view();
  const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
  LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles * blocks), [&](size_t item) {
    const int64_t tile = static_cast<int64_t>(item) / blocks, n0 = static_cast<int64_t>(item) % blocks * kColumnBlock;
    kernels.spmm_tile(view, n0, std::min(N, n0 + kColumnBlock), at + tile * K * L, offsets, rows_in(tile), alpha_,
                      bias, yt + tile * N * L, L);
  }));
  return ParallelFor(context, static_cast<size_t>(tiles), [&](size_t t) {
    const int64_t tile = static_cast<int64_t>(t);
    kernels.transpose(yt + tile * N * L, L, N, rows_in(tile), y + tile * T * N, N);
  });
}

}  // namespace lsc

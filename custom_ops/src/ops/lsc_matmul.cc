// LSCMatMul(A, W_blob[, bias]) -> Y = alpha * (A @ W) + bias, computed on the encoded weight.
// Contract: lsc_ort/ops.py.
#include "ops/lsc_matmul.h"

#include <algorithm>
#include <cstring>

#include "common/checked.h"
#include "common/memory.h"
#include "ops/op_util.h"
#include "ops/unified_ops.h"

namespace lsc {
namespace {

// Up to kSlicedRows rows of A run on the sliced layout; up to this many on the windowed layout
// (when the kernel variant has a windowed kernel); more rows take the batched product.
constexpr int64_t kWindowedBatch = 12;
// Lanes of a batch tile of the tiled product (at most the variant's tiled_tile): a K-block of
// 192 transposed activation rows then fits in L1; 128 lanes measured 15-30% slower.
constexpr int64_t kMatMulTile = 64;
// Bytes of partial sums a task keeps while it sweeps the K-blocks: an eighth of a 2 MiB L2, so
// they stay there while the weight's records stream past (a whole 3072-column tile, 768 KiB,
// measured 10-30% slower).
constexpr int64_t kSpanBytes = 262144;
// At most this many bytes of a tile's transposed activations are kept for all its spans.
constexpr int64_t kWholeAtBytes = 1 << 20;

}  // namespace

LscMatMulKernel::LscMatMulKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  alpha_ = AttributeOr(kernel_info, "alpha", 1.0f);
  trans_b_ = AttributeOr(kernel_info, "transB", int64_t{0});
  activation_ = AttributeOr(kernel_info, "activation", std::string());
  kernels_ = &SelectKernels();
}

Status LscMatMulKernel::Init(const OrtKernelInfo* info) {
  if (trans_b_ != 0 && trans_b_ != 1) return Fail("attribute transB must be 0 or 1, got ", trans_b_);
  if (!activation_.empty() && activation_ != "Relu" && activation_ != "Gelu") {
    return Fail("unsupported activation '", activation_, "' (supported: \"\", \"Relu\" and \"Gelu\")");
  }
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
  int64_t M = 0, y_elements = 0;
  LSC_RETURN_IF_ERROR(CheckedProduct(y_shape, &M, "the batch of A"));
  LSC_RETURN_IF_ERROR(CheckedMul(M, N, &y_elements, "the output Y"));
  LSC_RETURN_IF_ERROR(CheckAllocation(static_cast<uint64_t>(y_elements) * sizeof(float), "the output Y"));
  y_shape.push_back(N);
  const float* residual = nullptr;
  LSC_RETURN_IF_ERROR(ReadResidual(context, 3, y_shape, kScratchHalfZ, &residual));
  Ort::UnownedValue y_value = context.GetOutput(0, y_shape);
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
  // mswu weights: a few rows add their unified blocks with one multiply each after the free
  // non-zeros' product; more rows run every non-zero on the batch kernels (kUnifiedMatMulRows).
  const PackedWeight* product = weight.get();
  if (M > kUnifiedMatMulRows && K != 0) LSC_RETURN_IF_ERROR(weight->plain(&product));
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.0f;
    }
  } else if (M <= kSlicedRows) {
    LSC_RETURN_IF_ERROR(FewRows(raw_context, *product, a, M, bias, y));
  } else if (M <= kWindowedBatch && UseWindowed(*product)) {
    LSC_RETURN_IF_ERROR(SmallBatch(raw_context, *product, a, M, bias, y));
  } else {
    LSC_RETURN_IF_ERROR(LargeBatch(raw_context, *product, a, M, bias, y));
  }
  if (K != 0) LSC_RETURN_IF_ERROR(AddUnifiedMatMul(raw_context, *product, a, M, alpha_, y));
  LSC_RETURN_IF_ERROR(ApplyEpilogue(raw_context, residual, y, M * N));
  if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(M * N));
  return Status();
}

// The residual, then the activation, over Y in L2-sized pieces (Y of a batch usually is still
// there): a pass of its own, so that every product path and mswu's unified blocks come before it.
Status LscMatMulKernel::ApplyEpilogue(OrtKernelContext* context, const float* residual, float* y,
                                      int64_t count) const {
  if (activation_.empty() && residual == nullptr) return Status();
  constexpr int64_t kPiece = 16384;
  const GeluFn gelu = activation_ == "Gelu" ? kernels_->gelu : nullptr;
  return ParallelFor(context, static_cast<size_t>((count + kPiece - 1) / kPiece), [&](size_t piece) {
    const int64_t first = static_cast<int64_t>(piece) * kPiece;
    AddResidualAndActivate(residual ? residual + first : nullptr, activation_ == "Relu", gelu, y + first,
                           std::min(kPiece, count - first));
  });
}

// One or two rows: the sliced layout, which streams the weight at close to memory speed. Tasks
// are runs of column groups with about equal rounds.
Status LscMatMulKernel::FewRows(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                const float* bias, float* y) const {
  const SlicedLayout* layout = nullptr;
  LSC_RETURN_IF_ERROR(weight.sliced(&layout));
  const SlicedView view = layout->view();
  const int64_t K = weight.K(), N = weight.N();
  const int64_t parts = std::min<int64_t>(layout->groups, static_cast<int64_t>(ParallelBatches(1 << 20)) * 2);
  std::vector<int64_t> bounds = {0};
  for (int64_t p = 1; p < parts; ++p) {
    const uint64_t target = layout->rounds() * static_cast<uint64_t>(p) / static_cast<uint64_t>(parts);
    bounds.push_back(std::lower_bound(layout->group_start.begin(), layout->group_start.end(), target) -
                     layout->group_start.begin());
  }
  bounds.push_back(layout->groups);
  const Epilogue epilogue{alpha_, bias, false};
  return ParallelFor(context, static_cast<size_t>(parts), [&](size_t p) {
    kernels_->spmv_sliced(view, bounds[p], bounds[p + 1], a, K, M, epilogue, y, N);
  });
}

// Up to kWindowedBatch rows: the windowed layout, up to kWindowedRows rows per pass.
Status LscMatMulKernel::SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, float* y) const {
  const int64_t K = weight.K(), N = weight.N();
  const KernelSet& kernels = *kernels_;
  const WindowedLayout& layout = weight.windowed(kernels);
  const WindowedView view = layout.view();
  const int64_t ldx = WindowedStride(layout);
  const int64_t rows = std::min<int64_t>(M, kWindowedRows);
  float* x = ThreadScratch(kScratchRow, static_cast<size_t>(rows * ldx));
  const int64_t groups_per_task = std::max<int64_t>(1, layout.groups / 64);
  const int64_t tasks = (layout.groups + groups_per_task - 1) / groups_per_task;
  for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
    const int64_t count = std::min<int64_t>(kWindowedRows, M - m0);
    for (int64_t r = 0; r < count; ++r) StageWindowedRow(layout, a + (m0 + r) * K, x + r * ldx);
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
      const int64_t g0 = static_cast<int64_t>(t) * groups_per_task;
      kernels.spmv_windowed(view, g0, std::min(layout.groups, g0 + groups_per_task), x, ldx, count, alpha_, bias,
                            y + m0 * N, N);
    }));
  }
  return Status();
}

bool LscMatMulKernel::UseWindowed(const PackedWeight& weight) const {
  return kernels_->spmv_windowed != nullptr &&
         WindowedLayoutWorthwhile(weight.columns(), kernels_->lanes, kernels_->window);
}

// Batch tiles of T rows (one tile of fewer rows has a stride of the rows rounded up to 16, which
// keeps it compact). A task is (tile, run of whole chunks with about equal non-zeros): K-block by
// K-block, it adds W[block]^T Atb to the partial sums Yt [N, L] of its columns, Atb = A[tile,
// block]^T the block's transposed activations (the last block applies alpha and the bias), then
// transposes its columns of Yt into Y, a span of columns at a time.
//
// When there is one task per tile, it transposes each block itself into an L1-sized buffer just
// before using it, instead of writing a whole At out to L3 and reading it back: on a 3072-row
// weight at 128 rows that was a quarter of the time. When tiles split into several tasks (fewer
// tiles than cores), the tiles' At are transposed first, in parallel, and shared.
Status LscMatMulKernel::LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, float* y) const {
  const KernelSet& kernels = *kernels_;
  const int64_t K = weight.K(), N = weight.N(), T = std::min<int64_t>(kernels.tiled_tile, kMatMulTile);
  const int64_t tiles = (M + T - 1) / T;
  const int64_t L = tiles == 1 ? std::min(T, (M + 15) / 16 * 16) : T;
  const TiledLayout* layout = nullptr;
  LSC_RETURN_IF_ERROR(weight.tiled(L, &layout));
  const int64_t cores = static_cast<int64_t>(ParallelBatches(1 << 20)) / 2;
  const std::vector<int64_t> bounds = layout->TaskBounds((cores + tiles - 1) / tiles);
  const int64_t parts = static_cast<int64_t>(bounds.size()) - 1;
  const std::vector<int64_t>& block_begin = layout->block_begin;
  auto rows_in = [&](int64_t tile) { return std::min(T, M - tile * T); };
  float* shared_at = nullptr;  // tiles x K x L when tasks share their tile's At
  if (parts > 1) {
    shared_at = ThreadScratch(kScratchAt, static_cast<size_t>(tiles * K * L));
    const int64_t blocks = layout->blocks;
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles * blocks), [&](size_t item) {
      const int64_t tile = static_cast<int64_t>(item) / blocks, b = static_cast<int64_t>(item) % blocks;
      const int64_t k0 = block_begin[b], k1 = block_begin[b + 1];
      kernels.transpose(a + tile * T * K + k0, K, rows_in(tile), k1 - k0, shared_at + (tile * K + k0) * L, L);
    }));
  }
  int64_t block_rows = 0;
  for (int64_t b = 0; b < layout->blocks; ++b) block_rows = std::max(block_rows, block_begin[b + 1] - block_begin[b]);
  const Epilogue epilogue{alpha_, bias, false};
  const int64_t span = std::max<int64_t>(1, kSpanBytes / (4 * L * layout->chunk)) * layout->chunk;
  return ParallelFor(context, static_cast<size_t>(tiles * parts), [&](size_t item) {
    const int64_t tile = static_cast<int64_t>(item) / parts, p = static_cast<int64_t>(item) % parts;
    const int64_t n0 = bounds[p], n1 = bounds[p + 1], rows = rows_in(tile);
    if (n0 == n1) return;
    // One span: each block is transposed just before use. Several: the tile's whole At once
    // (if it fits in L2), which the spans then share, instead of once per span (1.03x at 768 x
    // 3072, 128 rows).
    const bool spans = n1 - n0 > span && K * L * 4 <= kWholeAtBytes;
    float* own_at = shared_at ? nullptr
                              : ThreadScratch(kScratchAtBlock, static_cast<size_t>((spans ? K : block_rows) * L));
    if (own_at && spans) kernels.transpose(a + tile * T * K, K, rows, K, own_at, L);
    float* yt = ThreadScratch(kScratchYt, static_cast<size_t>(N * L));
    for (int64_t s0 = n0; s0 < n1; s0 += span) {
      const int64_t s1 = std::min(n1, s0 + span);
      for (int64_t b = 0; b < layout->blocks; ++b) {
        const int64_t k0 = block_begin[b], k1 = block_begin[b + 1];
        const float* atb = own_at;
        if (own_at && spans) {
          atb = own_at + k0 * L;
        } else if (own_at) {
          kernels.transpose(a + tile * T * K + k0, K, rows, k1 - k0, own_at, L);
        } else {
          atb = shared_at + (tile * K + k0) * L;
        }
        kernels.spmm_tiled(layout->blocks_view(b, b + 1, b > 0, b + 1 < layout->blocks), s0, s1, atb, rows, epilogue,
                           yt, L);
      }
      // Positions [s0, s1) are whole chunks: the columns s0 .. s1 - 1, in some order.
      kernels.transpose(yt + s0 * L, L, s1 - s0, rows, y + tile * T * N + s0, N);
    }
  });
}

}  // namespace lsc

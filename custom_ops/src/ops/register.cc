// The library's one entry point: registers every lsc-ort op in the custom domain, one line per op
// and element type.
#include <memory>
#include <mutex>
#include <vector>

#include "common/export.h"
#include "onnxruntime_cxx_api.h"
#include "ops/lsc_attention.h"
#include "ops/lsc_conv.h"
#include "ops/lsc_matmul.h"

namespace {

constexpr const char* kDomain = "lsc_ort";

struct Registry {
  Ort::CustomOpDomain domain{kDomain};
  std::vector<std::unique_ptr<OrtCustomOp>> ops;

  template <typename Op>
  void Add(ONNXTensorElementDataType type) {
    auto op = std::make_unique<Op>(type);
    domain.Add(op.get());
    ops.push_back(std::move(op));
  }

  Registry() {
    Add<lsc::LscMatMulOp>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    Add<lsc::LscMatMulOp>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16);
    Add<lsc::LscConvOp>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
    Add<lsc::LscConvOp>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16);
    Add<lsc::LscAttentionOp>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  }
};

}  // namespace

extern "C" LSC_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {  // older than the headers we were built with: report with the oldest API
    const OrtApi* oldest = api_base->GetApi(1);
    return oldest->CreateStatus(ORT_FAIL, "lsc-ort needs onnxruntime >= 1.21");
  }
  Ort::InitApi(api);
  try {
    // Ops and domain live as long as the process: sessions may outlive any one registration.
    static Registry* registry = new Registry();
    Ort::UnownedSessionOptions(options).Add(registry->domain);
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}

// The library's one entry point: registers every lsc-ort op in the custom domain.
#include <mutex>

#include "common/export.h"
#include "onnxruntime_cxx_api.h"

extern "C" LSC_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                const OrtApiBase* api_base) {
  Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
  static Ort::CustomOpDomain domain{nullptr};
  static std::once_flag once;
  try {
    std::call_once(once, [] { domain = Ort::CustomOpDomain("lsc_ort"); });
    Ort::UnownedSessionOptions session_options(options);
    session_options.Add(domain);
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}

/* Runs one TVM-compiled kernel from a shared library without the TVM runtime, for the aarch64
 * numerical test under qemu (tests/test_tvm_targets.py).
 *
 *   harness LIB.so FUNC ARGS.bin OUT.bin
 *
 * ARGS.bin holds the kernel's tensors: u32 count, then per tensor u8 dtype code (DLPack),
 * u8 bits, u8 ndim, u8 0, i64 shape[ndim] and the data. The last tensor is the output; its
 * data after the call is written to OUT.bin. The runtime services the generated code calls
 * (workspace, parallel launch, errors) are provided here: serial and malloc-based. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlpack/dlpack.h>
#include <tvm/ffi/c_api.h>

typedef struct {
  void* sync_handle;
  int32_t num_task;
} ParallelEnv;
typedef int (*ParallelLambda)(int task_id, ParallelEnv* penv, void* cdata);

void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts, int32_t count) {
  fprintf(stderr, "kernel error %s:", kind);
  for (int32_t i = 0; i < count; ++i) fprintf(stderr, " %s", parts[i]);
  fprintf(stderr, "\n");
}

static void* alloc_workspace(int device_type, int device_id, uint64_t nbytes, int code, int bits) {
  (void)device_type, (void)device_id, (void)code, (void)bits;
  void* p = NULL;
  return posix_memalign(&p, 64, nbytes ? nbytes : 1) == 0 ? p : NULL;
}

static int free_workspace(int device_type, int device_id, void* ptr) {
  (void)device_type, (void)device_id;
  free(ptr);
  return 0;
}

static int parallel_launch(ParallelLambda lambda, void* cdata, int num_task) {
  (void)num_task;
  ParallelEnv env = {NULL, 1};
  return lambda(0, &env, cdata);
}

static int parallel_barrier(int task_id, ParallelEnv* penv) {
  (void)task_id, (void)penv;
  return 0;
}

static void set_pointer(void* lib, const char* name, void* value) {
  void** slot = (void**)dlsym(lib, name);
  if (slot) *slot = value;
}

static int fail(const char* what) {
  fprintf(stderr, "harness: %s\n", what);
  return 2;
}

int main(int argc, char** argv) {
  if (argc != 5) return fail("usage: harness LIB.so FUNC ARGS.bin OUT.bin");
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return fail(dlerror());
  set_pointer(lib, "__TVMBackendAllocWorkspace", (void*)alloc_workspace);
  set_pointer(lib, "__TVMBackendFreeWorkspace", (void*)free_workspace);
  set_pointer(lib, "__TVMBackendParallelLaunch", (void*)parallel_launch);
  set_pointer(lib, "__TVMBackendParallelBarrier", (void*)parallel_barrier);
  char symbol[256];
  snprintf(symbol, sizeof symbol, "__tvm_ffi_%s", argv[2]);
  TVMFFISafeCallType func = (TVMFFISafeCallType)dlsym(lib, symbol);
  if (!func) return fail("kernel symbol not found");

  FILE* in = fopen(argv[3], "rb");
  if (!in) return fail("cannot open ARGS.bin");
  uint32_t count = 0;
  if (fread(&count, 4, 1, in) != 1 || count == 0 || count > 64) return fail("bad ARGS.bin header");
  DLTensor* tensors = calloc(count, sizeof(DLTensor));
  TVMFFIAny* args = calloc(count, sizeof(TVMFFIAny));
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t head[4];
    if (fread(head, 1, 4, in) != 4 || head[2] > 8) return fail("bad tensor header");
    int64_t* shape = calloc(head[2] ? head[2] : 1, sizeof(int64_t));
    if (head[2] && fread(shape, sizeof(int64_t), head[2], in) != head[2]) return fail("bad shape");
    uint64_t size = head[1] / 8;
    for (int d = 0; d < head[2]; ++d) size *= (uint64_t)shape[d];
    void* data = alloc_workspace(0, 0, size, 0, 0);
    if (size && fread(data, 1, size, in) != size) return fail("short tensor data");
    tensors[i].data = data;
    tensors[i].device.device_type = kDLCPU;
    tensors[i].ndim = head[2];
    tensors[i].dtype.code = head[0];
    tensors[i].dtype.bits = head[1];
    tensors[i].dtype.lanes = 1;
    tensors[i].shape = shape;
    args[i].type_index = kTVMFFIDLTensorPtr;
    args[i].v_ptr = &tensors[i];
  }
  fclose(in);
  TVMFFIAny result;
  memset(&result, 0, sizeof result);
  result.type_index = kTVMFFINone;
  if (func(NULL, args, (int32_t)count, &result) != 0) return fail("kernel call failed");
  DLTensor* out = &tensors[count - 1];
  uint64_t size = out->dtype.bits / 8;
  for (int d = 0; d < out->ndim; ++d) size *= (uint64_t)out->shape[d];
  FILE* dst = fopen(argv[4], "wb");
  if (!dst || fwrite(out->data, 1, size, dst) != size) return fail("cannot write OUT.bin");
  fclose(dst);
  return 0;
}

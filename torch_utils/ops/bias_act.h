// Interface between the bias_act kernels (bias_act.cu) and their Python binding (bias_act.cpp).
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace styleinv {

// Activation ids; keep in sync with _ACTIVATIONS in bias_act.py.
enum BiasActKind { kLinear = 0, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

// Element types; keep in sync with _DTYPE_CODES in bias_act.py.
enum DTypeCode { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// One elementwise pass over n elements that share one dense memory layout.
//   order 0: out = clamp(gain * act(x + b), +-clamp)
//   order 1: out = ref * gain * act'(x + b)   (zero where the forward output was clamped)
//   order 2: out = ref * gain * act''(x + b)  (zero where the forward output was clamped)
// The bias index of element i is (i / bias_stride) % bias_size; b == nullptr means no bias. clamp < 0: no clamp.
struct BiasActArgs {
    const void* x;
    const void* b;
    const void* ref;
    void* out;
    int64_t n;
    int64_t bias_stride;
    int64_t bias_size;
    int act;
    int order;
    double alpha;
    double gain;
    double clamp;
};

cudaError_t launch_bias_act(const BiasActArgs& args, int dtype, cudaStream_t stream);

}  // namespace styleinv

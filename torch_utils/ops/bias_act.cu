// CUDA kernels for bias_act: fused bias + activation + gain + clamp, and its first and second derivatives.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bias_act.h"
#include "op_math.cuh"

namespace styleinv {
namespace {

__host__ __device__ inline float exp_(float v) { return expf(v); }
__host__ __device__ inline double exp_(double v) { return exp(v); }
__host__ __device__ inline float expm1_(float v) { return expm1f(v); }
__host__ __device__ inline double expm1_(double v) { return expm1(v); }
__host__ __device__ inline float log1p_(float v) { return log1pf(v); }
__host__ __device__ inline double log1p_(double v) { return log1p(v); }
__host__ __device__ inline float tanh_(float v) { return tanhf(v); }
__host__ __device__ inline double tanh_(double v) { return tanh(v); }

template <typename A> __host__ __device__ inline A sigmoid_(A v) { return A(1) / (A(1) + exp_(-v)); }

// The activation (order 0), its first (order 1) or its second (order 2) derivative at v.
template <typename A> __host__ __device__ inline A act_eval(int act, A v, A alpha, int order) {
    const A selu_scale = A(1.0507009873554804934193349852946);
    const A selu_alpha = A(1.6732632423543772848170429916717);
    switch (act) {
    case kRelu:
        return order == 0 ? (v > A(0) ? v : A(0)) : (order == 1 ? (v > A(0) ? A(1) : A(0)) : A(0));
    case kLrelu:
        return order == 0 ? (v > A(0) ? v : v * alpha) : (order == 1 ? (v > A(0) ? A(1) : alpha) : A(0));
    case kTanh: {
        A t = tanh_(v);
        return order == 0 ? t : (order == 1 ? A(1) - t * t : A(-2) * t * (A(1) - t * t));
    }
    case kSigmoid: {
        A s = sigmoid_(v);
        return order == 0 ? s : (order == 1 ? s * (A(1) - s) : s * (A(1) - s) * (A(1) - A(2) * s));
    }
    case kElu:
        if (v > A(0)) return order == 0 ? v : (order == 1 ? A(1) : A(0));
        return order == 0 ? alpha * expm1_(v) : alpha * exp_(v);
    case kSelu:
        if (v > A(0)) return order == 0 ? selu_scale * v : (order == 1 ? selu_scale : A(0));
        return order == 0 ? selu_scale * selu_alpha * expm1_(v) : selu_scale * selu_alpha * exp_(v);
    case kSoftplus: {  // torch's default threshold: linear above 20
        if (v > A(20)) return order == 0 ? v : (order == 1 ? A(1) : A(0));
        if (order == 0) return log1p_(exp_(v));
        A s = sigmoid_(v);
        return order == 1 ? s : s * (A(1) - s);
    }
    case kSwish: {
        A s = sigmoid_(v);
        if (order == 0) return v * s;
        if (order == 1) return s * (A(1) + v * (A(1) - s));
        return s * (A(1) - s) * (A(2) + v * (A(1) - A(2) * s));
    }
    default:  // kLinear
        return order == 0 ? v : (order == 1 ? A(1) : A(0));
    }
}

// Compute element i of the pass described by `a` (see BiasActArgs).
template <typename T> __host__ __device__ inline void bias_act_element(const BiasActArgs& a, int64_t i) {
    using A = typename OpMath<T>::type;
    A v = to_op(static_cast<const T*>(a.x)[i]);
    if (a.b != nullptr) v += to_op(static_cast<const T*>(a.b)[(i / a.bias_stride) % a.bias_size]);
    const A alpha = A(a.alpha), gain = A(a.gain), clamp = A(a.clamp);
    A out;
    if (a.order == 0) {
        out = act_eval(a.act, v, alpha, 0) * gain;
        if (clamp >= A(0)) out = out > clamp ? clamp : (out < -clamp ? -clamp : out);
    } else {
        A g = to_op(static_cast<const T*>(a.ref)[i]);
        if (clamp >= A(0)) {
            A y = act_eval(a.act, v, alpha, 0) * gain;
            if (y > clamp || y < -clamp) g = A(0);
        }
        out = g * gain * act_eval(a.act, v, alpha, a.order);
    }
    static_cast<T*>(a.out)[i] = from_op<T>(out);
}

template <typename T> __global__ void bias_act_kernel(BiasActArgs a) {
    const int64_t step = int64_t(blockDim.x) * gridDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step)
        bias_act_element<T>(a, i);
}

template <typename T> cudaError_t launch(const BiasActArgs& a, cudaStream_t stream) {
    const int threads = 256;
    const int64_t blocks = (a.n + threads - 1) / threads;
    bias_act_kernel<T><<<unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream>>>(a);
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_bias_act(const BiasActArgs& args, int dtype, cudaStream_t stream) {
    if (args.n == 0) return cudaSuccess;
    switch (dtype) {
    case kFloat32: return launch<float>(args, stream);
    case kFloat64: return launch<double>(args, stream);
    case kFloat16: return launch<__half>(args, stream);
    case kBFloat16: return launch<__nv_bfloat16>(args, stream);
    default: return cudaErrorInvalidValue;
    }
}

}  // namespace styleinv

// Element-type helpers shared by the CUDA kernels: arithmetic in float (double for double tensors), with
// conversions from and to the storage types float, double, half and bfloat16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace styleinv {

template <typename T> struct OpMath { using type = float; };
template <> struct OpMath<double> { using type = double; };

__host__ __device__ inline float to_op(float v) { return v; }
__host__ __device__ inline double to_op(double v) { return v; }
__host__ __device__ inline float to_op(__half v) { return __half2float(v); }
__host__ __device__ inline float to_op(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __host__ __device__ inline T from_op(typename OpMath<T>::type v) { return v; }
template <> __host__ __device__ inline __half from_op<__half>(float v) { return __float2half(v); }
template <> __host__ __device__ inline __nv_bfloat16 from_op<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

}  // namespace styleinv

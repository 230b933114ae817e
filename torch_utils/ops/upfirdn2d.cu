// CUDA kernel for upfirdn2d: zero-insertion upsampling, padding, FIR filtering and decimation in one pass,
// one thread per output pixel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "upfirdn2d.h"
#include "op_math.cuh"

namespace styleinv {
namespace {

// First filter tap k >= 0 whose upsampled coordinate j0 + k is >= 0 and a multiple of `up` (i.e. hits an input pixel).
__host__ __device__ inline int64_t first_tap(int64_t j0, int up) {
    int64_t k = j0 < 0 ? -j0 : 0;
    int64_t r = (j0 + k) % up;
    return r == 0 ? k : k + (up - r);
}

// Compute output element i (flat index in [batch, channels, out_h, out_w] order).
template <typename T> __host__ __device__ inline void upfirdn2d_element(const UpFirDn2dArgs& a, int64_t i) {
    using A = typename OpMath<T>::type;
    const int64_t ox = i % a.out_w;
    int64_t t = i / a.out_w;
    const int64_t oy = t % a.out_h;
    t /= a.out_h;
    const int64_t c = t % a.channels;
    const int64_t n = t / a.channels;
    const T* x = static_cast<const T*>(a.x) + n * a.x_stride[0] + c * a.x_stride[1];
    const A* f = static_cast<const A*>(a.f);
    const int64_t jy0 = oy * a.down_y - a.pad_y0;
    const int64_t jx0 = ox * a.down_x - a.pad_x0;
    const int64_t kx_first = first_tap(jx0, a.up_x);
    A acc = A(0);
    for (int64_t ky = first_tap(jy0, a.up_y); ky < a.f_h; ky += a.up_y) {
        const int64_t iy = (jy0 + ky) / a.up_y;
        if (iy >= a.in_h) break;
        const T* row = x + iy * a.x_stride[2];
        const A* frow = f + ky * a.f_w;
        for (int64_t kx = kx_first; kx < a.f_w; kx += a.up_x) {
            const int64_t ix = (jx0 + kx) / a.up_x;
            if (ix >= a.in_w) break;
            acc += frow[kx] * to_op(row[ix * a.x_stride[3]]);
        }
    }
    static_cast<T*>(a.y)[n * a.y_stride[0] + c * a.y_stride[1] + oy * a.y_stride[2] + ox * a.y_stride[3]] =
        from_op<T>(acc);
}

template <typename T> __global__ void upfirdn2d_kernel(UpFirDn2dArgs a, int64_t total) {
    const int64_t step = int64_t(blockDim.x) * gridDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step)
        upfirdn2d_element<T>(a, i);
}

template <typename T> cudaError_t launch(const UpFirDn2dArgs& a, cudaStream_t stream) {
    const int64_t total = a.batch * a.channels * a.out_h * a.out_w;
    if (total == 0) return cudaSuccess;
    const int threads = 256;
    const int64_t blocks = (total + threads - 1) / threads;
    upfirdn2d_kernel<T><<<unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream>>>(a, total);
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_upfirdn2d(const UpFirDn2dArgs& args, int dtype, cudaStream_t stream) {
    switch (dtype) {
    case kUfdFloat32: return launch<float>(args, stream);
    case kUfdFloat64: return launch<double>(args, stream);
    case kUfdFloat16: return launch<__half>(args, stream);
    case kUfdBFloat16: return launch<__nv_bfloat16>(args, stream);
    default: return cudaErrorInvalidValue;
    }
}

}  // namespace styleinv

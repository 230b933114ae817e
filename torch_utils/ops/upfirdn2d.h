// Interface between the upfirdn2d kernel (upfirdn2d.cu) and its Python binding (upfirdn2d.cpp).
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace styleinv {

// Element types; keep in sync with _DTYPE_CODES in upfirdn2d.py.
enum UpFirDn2dDType { kUfdFloat32 = 0, kUfdFloat64 = 1, kUfdFloat16 = 2, kUfdBFloat16 = 3 };

// One upfirdn2d pass: y[n, c, oy, ox] = sum over taps (ky, kx) of f[ky, kx] * u[oy * down_y + ky, ox * down_x + kx]
// where u is x zero-upsampled by (up_x, up_y) and padded by (pad_x0, pad_y0) at the start (negative = crop),
// i.e. u[j, i] = x[(j - pad_y0) / up_y, (i - pad_x0) / up_x] when both divisions are exact and in range, else 0.
// f is a cross-correlation filter [f_h, f_w] (contiguous, float for float/half/bfloat16 tensors, double for double),
// already flipped and scaled by the caller. Strides are in elements.
struct UpFirDn2dArgs {
    const void* x;
    void* y;
    const void* f;
    int64_t batch, channels, in_h, in_w, out_h, out_w;
    int64_t x_stride[4];
    int64_t y_stride[4];
    int up_x, up_y, down_x, down_y, pad_x0, pad_y0, f_w, f_h;
};

cudaError_t launch_upfirdn2d(const UpFirDn2dArgs& args, int dtype, cudaStream_t stream);

}  // namespace styleinv

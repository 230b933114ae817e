// Python binding for the upfirdn2d CUDA kernel: argument checks, device guard, stream, launch.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/utils/pybind.h>

#include "upfirdn2d.h"

namespace {

int dtype_code(const at::Tensor& t) {
    switch (t.scalar_type()) {
    case at::kFloat: return styleinv::kUfdFloat32;
    case at::kDouble: return styleinv::kUfdFloat64;
    case at::kHalf: return styleinv::kUfdFloat16;
    case at::kBFloat16: return styleinv::kUfdBFloat16;
    default: TORCH_CHECK(false, "upfirdn2d (CUDA): unsupported dtype ", t.scalar_type());
    }
    return -1;
}

// One pass (see UpFirDn2dArgs) from x [N, C, H, W] into the caller-allocated y [N, C, out_h, out_w].
void upfirdn2d(at::Tensor y, at::Tensor x, at::Tensor f, int64_t up_x, int64_t up_y, int64_t down_x,
               int64_t down_y, int64_t pad_x0, int64_t pad_y0) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 4, "upfirdn2d (CUDA): x must be a 4-D CUDA tensor");
    TORCH_CHECK(y.is_cuda() && y.device() == x.device() && y.dim() == 4 && y.scalar_type() == x.scalar_type() &&
                y.size(0) == x.size(0) && y.size(1) == x.size(1), "upfirdn2d (CUDA): y must be [N, C, *, *] like x");
    TORCH_CHECK(y.is_non_overlapping_and_dense(), "upfirdn2d (CUDA): y must be dense");
    const auto f_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(f.is_cuda() && f.device() == x.device() && f.dim() == 2 && f.is_contiguous() &&
                f.scalar_type() == f_type, "upfirdn2d (CUDA): f must be a contiguous 2-D ", f_type, " tensor on ",
                x.device());
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d (CUDA): up/down must be >= 1");
    styleinv::UpFirDn2dArgs a{};
    a.x = x.data_ptr();
    a.y = y.data_ptr();
    a.f = f.data_ptr();
    a.batch = x.size(0);
    a.channels = x.size(1);
    a.in_h = x.size(2);
    a.in_w = x.size(3);
    a.out_h = y.size(2);
    a.out_w = y.size(3);
    for (int d = 0; d < 4; ++d) {
        a.x_stride[d] = x.stride(d);
        a.y_stride[d] = y.stride(d);
    }
    a.up_x = int(up_x);
    a.up_y = int(up_y);
    a.down_x = int(down_x);
    a.down_y = int(down_y);
    a.pad_x0 = int(pad_x0);
    a.pad_y0 = int(pad_y0);
    a.f_w = int(f.size(1));
    a.f_h = int(f.size(0));
    c10::cuda::CUDAGuard guard(x.device());
    cudaError_t err = styleinv::launch_upfirdn2d(a, dtype_code(x), c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "upfirdn2d (CUDA): kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "Upsample (zero insertion), pad, FIR filter (cross-correlation), downsample.");
}

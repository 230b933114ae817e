// Python binding for the bias_act CUDA kernels: argument checks, device guard, stream, launch.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/utils/pybind.h>

#include "bias_act.h"

namespace {

int dtype_code(const at::Tensor& t) {
    switch (t.scalar_type()) {
    case at::kFloat: return styleinv::kFloat32;
    case at::kDouble: return styleinv::kFloat64;
    case at::kHalf: return styleinv::kFloat16;
    case at::kBFloat16: return styleinv::kBFloat16;
    default: TORCH_CHECK(false, "bias_act (CUDA): unsupported dtype ", t.scalar_type());
    }
    return -1;
}

// Check that t is a CUDA tensor with the dtype, device, sizes and strides of x.
void check_like(const at::Tensor& t, const at::Tensor& x, const char* what) {
    TORCH_CHECK(t.is_cuda() && t.device() == x.device(), "bias_act (CUDA): ", what, " must be on ", x.device());
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act (CUDA): ", what, " must have dtype ", x.scalar_type());
    TORCH_CHECK(t.sizes() == x.sizes(), "bias_act (CUDA): ", what, " must have the shape of x");
    for (int64_t d = 0; d < x.dim(); ++d)  // strides of size-1 dims do not matter
        TORCH_CHECK(x.size(d) == 1 || t.stride(d) == x.stride(d), "bias_act (CUDA): ", what,
                    " must have the memory layout of x");
}

// One pass of the kernel (see BiasActArgs); `out` is allocated by the caller like x. Empty b/ref = absent.
void bias_act(at::Tensor out, at::Tensor x, at::Tensor b, at::Tensor ref, int64_t bias_stride, int64_t act,
              int64_t order, double alpha, double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act (CUDA): x must be a CUDA tensor");
    TORCH_CHECK(x.is_non_overlapping_and_dense(), "bias_act (CUDA): x must be dense");
    TORCH_CHECK(order >= 0 && order <= 2, "bias_act (CUDA): order must be 0, 1 or 2");
    check_like(out, x, "out");
    if (order > 0) check_like(ref, x, "ref");
    styleinv::BiasActArgs a{};
    if (b.numel() > 0) {
        TORCH_CHECK(b.is_cuda() && b.device() == x.device() && b.scalar_type() == x.scalar_type() &&
                    b.dim() == 1 && b.is_contiguous(), "bias_act (CUDA): b must be a contiguous 1-D tensor like x");
        TORCH_CHECK(bias_stride > 0, "bias_act (CUDA): bias_stride must be positive");
        a.b = b.data_ptr();
        a.bias_size = b.numel();
    }
    a.x = x.data_ptr();
    a.ref = order > 0 ? ref.data_ptr() : nullptr;
    a.out = out.data_ptr();
    a.n = x.numel();
    a.bias_stride = bias_stride;
    a.act = int(act);
    a.order = int(order);
    a.alpha = alpha;
    a.gain = gain;
    a.clamp = clamp;
    c10::cuda::CUDAGuard guard(x.device());
    cudaError_t err = styleinv::launch_bias_act(a, dtype_code(x), c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "bias_act (CUDA): kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp (order 0) or its derivatives (1, 2).");
}

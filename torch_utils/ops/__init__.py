"""Custom ops for the StyleGAN2 networks: bias_act, upfirdn2d, conv2d_resample and modulated_conv2d.

Each op is plain PyTorch by default; bias_act and upfirdn2d also have CUDA kernels that are compiled on first use
with a CUDA tensor and fall back to the PyTorch path when they cannot be built. `STYLEINV_OPS=auto|ref|cuda`
chooses (see cuda_build.py).
"""

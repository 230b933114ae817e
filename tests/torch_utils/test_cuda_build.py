"""Tests for torch_utils/ops/cuda_build.py: toolkit lookup, STYLEINV_OPS, one warning per failed build, CPU
silence without nvcc, and (slow) a real nvcc build of both CUDA extensions."""

import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest
import torch

from torch_utils.ops import cuda_build

REPO = Path(__file__).resolve().parents[2]


def _fake_toolkit(root: Path, with_cudart: bool = True) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\necho fake\n")
    (root / "bin" / "nvcc").chmod(0o755)
    (root / "lib64").mkdir()
    if with_cudart:
        (root / "lib64" / "libcudart.so").write_text("")
    return root


def test_ops_mode(monkeypatch):
    monkeypatch.delenv("STYLEINV_OPS", raising=False)
    assert cuda_build.ops_mode() == "auto"
    for mode in ("auto", "ref", "cuda", "CUDA "):
        monkeypatch.setenv("STYLEINV_OPS", mode)
        assert cuda_build.ops_mode() == mode.strip().lower()
    monkeypatch.setenv("STYLEINV_OPS", "fast")
    with pytest.raises(ValueError, match="STYLEINV_OPS.*auto, ref, cuda"):
        cuda_build.ops_mode()


def test_find_cuda_home_prefers_explicit_variable(tmp_path):
    explicit = _fake_toolkit(tmp_path / "explicit", with_cudart=False)
    env = {"CUDA_HOME": str(explicit), "PATH": ""}
    assert cuda_build.find_cuda_home(env, standard=str(tmp_path / "none")) == str(explicit)


def test_find_cuda_home_follows_a_symlinked_nvcc(tmp_path):
    toolkit = _fake_toolkit(tmp_path / "cuda-13.0")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").symlink_to(toolkit / "bin" / "nvcc")
    env = {"PATH": str(tmp_path / "bin")}
    assert cuda_build.find_cuda_home(env, standard=str(tmp_path / "none")) == str(toolkit.resolve())


def test_find_cuda_home_skips_a_wrapper_script_and_uses_the_standard_link(tmp_path):
    # A shell script on PATH (like /usr/local/bin/nvcc exec'ing the real one): its parent has no libcudart.
    toolkit = _fake_toolkit(tmp_path / "cuda-13.0")
    wrapper_dir = tmp_path / "local" / "bin"
    wrapper_dir.mkdir(parents=True)
    (wrapper_dir / "nvcc").write_text(f"#!/bin/sh\nexec {toolkit}/bin/nvcc \"$@\"\n")
    (wrapper_dir / "nvcc").chmod(0o755)
    (tmp_path / "cuda").symlink_to(toolkit)
    env = {"PATH": str(wrapper_dir)}
    assert cuda_build.find_cuda_home(env, standard=str(tmp_path / "cuda")) == str(tmp_path / "cuda")
    assert cuda_build.find_cuda_home(env, standard=str(tmp_path / "none")) is None


def test_cached_build_dir_changes_with_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    src = tmp_path / "op.cu"
    src.write_text("// v1")
    first = cuda_build.cached_build_dir("op", [src], "sm_90")
    assert first.parent == tmp_path and first.name.startswith("op-")
    assert cuda_build.cached_build_dir("op", [src], "sm_90") == first
    assert cuda_build.cached_build_dir("op", [src], "sm_80") != first
    src.write_text("// v2")
    assert cuda_build.cached_build_dir("op", [src], "sm_90") != first


def test_failed_build_warns_once_and_is_never_retried(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLEINV_OPS", raising=False)
    name = f"missing_op_{uuid.uuid4().hex[:8]}"  # fresh name: the memo is per process
    sources = [str(tmp_path / "missing.cu")]
    misses = cuda_build._build_once.cache_info().misses
    with pytest.warns(RuntimeWarning, match=f"{name}.*could not be built.*missing(.|\\n)*reference path") as record:
        assert cuda_build.load_extension(name, sources) is None
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cuda_build.load_extension(name, sources) is None  # silent, no new attempt
    assert cuda_build._build_once.cache_info().misses == misses + 1
    monkeypatch.setenv("STYLEINV_OPS", "cuda")
    with pytest.raises(RuntimeError, match=f"{name}.*could not be built"):
        cuda_build.load_extension(name, sources)
    monkeypatch.setenv("STYLEINV_OPS", "ref")
    assert cuda_build.load_extension(f"{name}_ref", sources) is None
    assert cuda_build._build_once.cache_info().misses == misses + 1  # ref: nothing attempted


# A user without nvcc (PATH without it, no CUDA_HOME): importing and running every op on CPU, with gradients of
# gradients, prints nothing and warns nothing, and the build machinery (torch.utils.cpp_extension) is never even
# imported. The same with STYLEINV_OPS=cuda: CPU tensors ignore it.
def test_cpu_ops_run_silently_without_nvcc():
    code = textwrap.dedent("""
        import os, sys, warnings
        warnings.simplefilter("error")
        import torch
        from torch_utils.ops import bias_act, upfirdn2d, conv2d_resample, modulated_conv
        for ops_env in ("", "cuda"):
            os.environ["STYLEINV_OPS"] = ops_env
            x = torch.randn(2, 4, 8, 8, requires_grad=True)
            f = upfirdn2d.setup_filter([1, 3, 3, 1])
            y = bias_act.bias_act(x, torch.zeros(4), act="lrelu", clamp=256)
            y = upfirdn2d.upsample2d(y, f)
            y = upfirdn2d.downsample2d(y, f) + upfirdn2d.filter2d(x, f)
            y = y + upfirdn2d.upfirdn2d(x, f, padding=2)[:, :, 1:, 1:]
            y = conv2d_resample.conv2d_resample(y, torch.randn(3, 4, 3, 3), f, up=2, padding=1)
            y = modulated_conv.modulated_conv2d(y, torch.randn(4, 3, 3, 3), torch.randn(2, 3), padding=1,
                                                fused_modconv=False)
            (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
            g.square().sum().backward()
        assert "torch.utils.cpp_extension" not in sys.modules
        print("OK")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "STYLEINV_OPS")}
    env.update(PATH="/nonexistent", PYTHONPATH=str(REPO), PYTHONWARNINGS="error")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "OK" and result.stderr == "", result.stderr


# Compiles both extensions with nvcc in a fresh process (one architecture, no GPU needed) and imports them.
@pytest.mark.slow
def test_both_cuda_extensions_compile(tmp_path):
    cuda_home = cuda_build.find_cuda_home()
    if cuda_home is None or torch.version.cuda is None:
        pytest.skip("no CUDA toolkit (nvcc) or a CPU-only torch build")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from torch_utils.ops import bias_act, cuda_build, upfirdn2d
        for op in (bias_act, upfirdn2d):
            build_dir = Path({str(tmp_path)!r}) / op.EXTENSION_NAME
            try:
                module = cuda_build.compile_extension(op.EXTENSION_NAME, op.EXTENSION_SOURCES, build_dir)
                assert callable(getattr(module, op.__name__.rsplit(".", 1)[1]))
                print("LOADED", module.__file__)
            except ImportError as e:  # the .so was built but needs a GPU driver to load
                assert "libcuda" in str(e), e
                print("BUILT", next(build_dir.glob(op.EXTENSION_NAME + "*.so")))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_PATH", "STYLEINV_OPS")}
    env.update(CUDA_HOME=cuda_home, TORCH_CUDA_ARCH_LIST="9.0", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    built = [line.split()[1] for line in result.stdout.splitlines() if line.split()[:1] in (["LOADED"], ["BUILT"])]
    assert len(built) == 2 and all(Path(p).is_file() for p in built), result.stdout

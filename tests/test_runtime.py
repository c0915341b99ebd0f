"""The CUDA speed defaults resolve as documented (pure function: no GPU needed)."""

from __future__ import annotations

import warnings

import pytest

from stylefa.runtime import CudaSettings, apply_backend_flags, resolve_cuda_settings


def test_cuda_defaults_are_the_references_mixed_precision_with_tf32_and_autotuning():
    s = resolve_cuda_settings("cuda")
    assert s == CudaSettings(precision="fp16", num_fp16_res=4, tf32=True, cudnn_benchmark=True,
                             channels_last=False, compile=False)


@pytest.mark.parametrize("precision, num, tf32", [("fp32", 0, False), ("fp16", 4, True), ("bf16", 4, True)])
def test_cuda_explicit_precision(precision, num, tf32):
    s = resolve_cuda_settings("cuda", precision)
    assert (s.precision, s.num_fp16_res, s.tf32) == (precision, num, tf32)  # fp32 = exact: no TF32
    assert resolve_cuda_settings("cuda", precision, tf32=True).tf32 is True


def test_cuda_options_and_deterministic():
    s = resolve_cuda_settings("cuda", "fp32", tf32=False, channels_last=True, compile=True, deterministic=True)
    assert (s.precision, s.tf32, s.channels_last, s.compile, s.cudnn_benchmark) == ("fp32", False, True, True, False)


def test_cpu_is_fp32_without_gpu_flags_and_silent_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = resolve_cuda_settings("cpu")
        assert s == CudaSettings()  # fp32, no TF32, no cuDNN changes
        assert resolve_cuda_settings("cpu", "fp32", tf32=False).precision == "fp32"
        assert resolve_cuda_settings("cpu", compile=True).compile is True  # compile works on the CPU


@pytest.mark.parametrize("request_", [dict(precision="fp16"), dict(precision="bf16"), dict(tf32=True),
                                      dict(channels_last=True)])
def test_cpu_drops_gpu_only_requests_with_one_warning(request_):
    with pytest.warns(UserWarning, match="only apply on CUDA") as record:
        s = resolve_cuda_settings("cpu", **request_)
    assert len(record) == 1
    assert (s.precision, s.num_fp16_res, s.tf32, s.channels_last) == ("fp32", 0, False, False)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_cuda_settings("cuda", "fp8")
    with pytest.raises(ValueError, match="compile backend"):
        resolve_cuda_settings("cuda", compile_backend="tvm")


def test_backend_flags_untouched_on_cpu():
    import torch

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    apply_backend_flags(CudaSettings(tf32=True, cudnn_benchmark=True), torch.device("cpu"))
    after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    assert after == before


def test_train_options_resolve_through_the_same_function():
    from stylefa.train.options import TrainOptions, resolve

    opts = TrainOptions(data="d", outdir="o", cfg="auto")
    gpu = resolve(opts, 256, 0, device_type="cuda")
    assert (gpu.precision, gpu.tf32, gpu.G.synthesis.num_fp16_res, gpu.D.num_fp16_res) == ("fp16", True, 4, 4)
    assert gpu.G.synthesis.conv_clamp == 256 and gpu.D.conv_clamp == 256
    assert gpu.cuda_settings() == resolve_cuda_settings("cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu = resolve(opts, 256, 0, device_type="cpu")
    assert (cpu.precision, cpu.tf32, cpu.G.synthesis.num_fp16_res) == ("fp32", False, 0)
    exact = resolve(TrainOptions(data="d", outdir="o", precision="fp32"), 256, 0, device_type="cuda")
    assert (exact.precision, exact.tf32, exact.G.synthesis.num_fp16_res) == ("fp32", False, 0)
    # compile is a runtime choice: a run may resume with or without it.
    assert "compile" not in gpu.training_identity()

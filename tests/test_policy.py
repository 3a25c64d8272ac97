"""The loading policy for described devices (no GPU is needed to test the decisions)."""

from __future__ import annotations

import pytest
import torch

from helpers import DeviceInfo, plan_loading
from helpers.loading import quantization_config

GIB = 2**30
PHI35 = 3_821_079_552  # parameters of a Phi-3.5-mini-shaped model
H100 = DeviceInfo("cuda", "H100", 80 * GIB, 78 * GIB, bf16=True, compute_capability=(9, 0))
T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, 14 * GIB, bf16=False, compute_capability=(7, 5))
SMALL_GPU = DeviceInfo("cuda", "small", 8 * GIB, 6 * GIB, bf16=True)
CPU = DeviceInfo("cpu", "cpu", bf16=True)
MPS = DeviceInfo("mps", "Apple MPS")


def test_cpu_auto_is_full_precision_unquantized():
    plan = plan_loading(CPU, PHI35, "auto")
    assert (plan.device, plan.dtype, plan.quantization, plan.static_cache) == ("cpu", torch.float32, None, False)


def test_big_gpu_uses_bf16_with_static_cache():
    plan = plan_loading(H100, PHI35, "auto")
    assert (plan.dtype, plan.quantization, plan.static_cache) == (torch.bfloat16, None, True)


def test_small_models_keep_the_dynamic_cache():
    plan = plan_loading(H100, 135_000_000, "auto")
    assert (plan.dtype, plan.quantization, plan.static_cache) == (torch.bfloat16, None, False)
    assert plan_loading(H100, PHI35, "auto", causal=False).static_cache is False


def test_t4_has_no_bf16_so_fp16():
    plan = plan_loading(T4, PHI35, "auto")
    assert (plan.dtype, plan.quantization) == (torch.float16, None)


def test_model_that_does_not_fit_goes_4bit():
    plan = plan_loading(SMALL_GPU, PHI35, "auto")
    assert plan.quantization == "4bit" and plan.static_cache is False
    assert "4-bit" in plan.reason


def test_headroom_boundary():
    free = 10 * GIB
    gpu = DeviceInfo("cuda", "g", 16 * GIB, free, bf16=True)
    fits = int((free - (1 << 30)) / (2 * 1.2))
    assert plan_loading(gpu, fits, "auto").quantization is None
    assert plan_loading(gpu, fits + 1_000_000, "auto").quantization == "4bit"


def test_8bit_only_on_request():
    for device in (H100, T4, SMALL_GPU, CPU):
        assert plan_loading(device, PHI35, "auto").quantization != "8bit"
    plan = plan_loading(H100, PHI35, "8bit")
    assert (plan.quantization, plan.dtype) == ("8bit", torch.float16)


def test_quantization_on_cpu_when_asked():
    assert plan_loading(CPU, PHI35, "4bit").quantization == "4bit"
    assert "memory, not time" in plan_loading(CPU, PHI35, "8bit").reason


def test_none_disables_quantization_even_when_tight():
    assert plan_loading(SMALL_GPU, PHI35, None).quantization is None


def test_mps_rejects_bitsandbytes():
    assert plan_loading(MPS, PHI35, "auto").dtype == torch.float16
    with pytest.raises(RuntimeError, match="MPS"):
        plan_loading(MPS, PHI35, "4bit")


def test_unknown_quantization():
    with pytest.raises(ValueError, match="Unknown quantization"):
        plan_loading(CPU, PHI35, "3bit")


def test_bitsandbytes_config_for_4bit():
    config = quantization_config(plan_loading(SMALL_GPU, PHI35, "auto"))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_asking_for_cuda_without_gpu_is_an_error():
    import helpers

    with pytest.raises(RuntimeError, match="no.*available|none is available"):
        helpers.detect_device("cuda")

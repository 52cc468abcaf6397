"""channels_last + bf16 autocast give the plain fp32 step's result within bf16 tolerance, and the
device-conditional defaults (MODEL.CHANNELS_LAST_DEVICES, SOLVER.AMP.DEVICES) switch them per device."""
import copy

import pytest
import torch

from ssl_zoo.engine.defaults import build_trainer
from ssl_zoo.utils.env import _cpu_has_bf16, amp_dtype_from_cfg
from ssl_zoo.modeling.method import build_method


def _loss_and_grads(model, views, amp_dtype=None):
    with torch.autocast("cpu", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = model(views)
    out["loss"].backward()
    return float(out["loss"].detach().float()), [p.grad.detach().float() for p in model.parameters()
                                                  if p.grad is not None]


def test_channels_last_bf16_step_matches_fp32(tiny_cfg):
    torch.manual_seed(0)
    plain = build_method(tiny_cfg).train()
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]
    loss_32, grads_32 = _loss_and_grads(plain, views)
    # channels_last alone changes only the summation order
    loss_cl, _ = _loss_and_grads(copy.deepcopy(plain).to(memory_format=torch.channels_last), views)
    assert abs(loss_cl - loss_32) <= 1e-4
    # bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%): the loss of a random network
    # (~4 = two terms of 2 - 2 cos) agrees to a few 1e-2, the gradients' direction to ~1%.
    loss_bf, grads_bf = _loss_and_grads(fast, [v.contiguous(memory_format=torch.channels_last) for v in views],
                                        torch.bfloat16)
    assert abs(loss_bf - loss_32) <= 2e-2 * abs(loss_32)
    flat_32, flat_bf = torch.cat([g.flatten() for g in grads_32]), torch.cat([g.flatten() for g in grads_bf])
    cos = torch.nn.functional.cosine_similarity(flat_32, flat_bf, dim=0)
    assert cos > 0.98


def test_amp_applies_only_on_listed_devices(tiny_cfg):
    cfg = tiny_cfg.clone()
    cfg.SOLVER.AMP.ENABLED = True
    cfg.SOLVER.AMP.DEVICES = ("cuda",)  # the ImageNet configs' setting
    assert amp_dtype_from_cfg(cfg, torch.device("cpu")) is None
    assert amp_dtype_from_cfg(cfg, torch.device("cuda")) == torch.bfloat16
    cfg.SOLVER.AMP.DEVICES = ("cpu", "cuda")
    assert amp_dtype_from_cfg(cfg, torch.device("cpu")) == (torch.bfloat16 if _cpu_has_bf16() else None)


@pytest.mark.parametrize("devices,expected", [(("cuda",), torch.contiguous_format), (("cpu", "cuda"), torch.channels_last)])
def test_channels_last_applies_only_on_listed_devices(tiny_cfg, tmp_path, devices, expected):
    cfg = tiny_cfg.clone()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.MODEL.CHANNELS_LAST, cfg.MODEL.CHANNELS_LAST_DEVICES = True, devices
    trainer = build_trainer(cfg)
    conv = next(m for m in trainer.unwrapped_model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    assert conv.weight.is_contiguous(memory_format=expected)

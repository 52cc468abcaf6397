"""MODEL.COMPILE: the compiled step equals the eager one; a failing compiler falls back with one log line."""
import copy
import logging

import torch
from torch import nn

from ssl_zoo.engine.compile import compile_method
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses import BYOLLoss
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver.schedules import build_momentum_schedule
from ssl_zoo_methods.byol import BYOL
from test_trainer import _hook_log_records


def _tiny_byol() -> BYOL:
    """BYOL (online + target + predictor, the real loss) around a one-conv backbone: cheap to trace."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten())
    return BYOL(backbone, MLP(8, 16, 8), MLP(8, 16, 8), BYOLLoss(), build_momentum_schedule("cosine", 0.99)).train()


def _views(b=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, size, size, generator=g) for _ in range(2)]


def _step(model, views):
    out = model(views)
    out["loss"].backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    return float(out["loss"].detach()), grads


def test_compiled_method_step_equals_eager():
    eager = _tiny_byol()
    compiled = compile_method(copy.deepcopy(eager), backend="aot_eager")  # traced graph, autograd via AOT
    assert type(compiled.forward).__name__ == "_CompiledWithFallback"
    views = _views()
    loss_e, grads_e = _step(eager, views)
    loss_c, grads_c = _step(compiled, views)
    assert not compiled.forward.failed  # it really ran compiled
    assert abs(loss_c - loss_e) <= 1e-5 * max(1.0, abs(loss_e))
    assert len(grads_c) == len(grads_e)
    for gc, ge in zip(grads_c, grads_e):
        torch.testing.assert_close(gc, ge, atol=1e-5, rtol=1e-4)
    # state_dict keys are unchanged (checkpoints stay loadable without the compile wrapper)
    assert list(compiled.state_dict()) == list(eager.state_dict())


def _broken_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


def test_compile_failure_falls_back_to_eager_with_a_log_line():
    eager = _tiny_byol()
    model = compile_method(copy.deepcopy(eager), backend=_broken_backend)
    views = _views(seed=1)
    # a handler on the logger itself: other tests' setup_logger may stop propagation to caplog's root handler
    with _hook_log_records(logging.WARNING, "ssl_zoo.engine.compile") as records:
        loss_c, grads_c = _step(model, views)
        _step(model, views)  # later calls go straight to eager: still one warning
    loss_e, grads_e = _step(eager, views)
    assert model.forward.failed
    warnings = [r for r in records if "MODEL.COMPILE" in r.getMessage()]
    assert len(warnings) == 1 and "running eagerly" in warnings[0].getMessage()
    assert loss_c == loss_e
    for gc, ge in zip(grads_c, grads_e):
        torch.testing.assert_close(gc, ge, atol=0, rtol=0)


def test_unknown_backend_name_keeps_the_model_eager(tiny_cfg):
    model = build_method(tiny_cfg)
    forward = model.forward
    with _hook_log_records(logging.WARNING, "ssl_zoo.engine.compile") as records:
        compile_method(model, backend="no_such_backend")
    assert model.forward == forward
    assert any("no_such_backend" in r.getMessage() for r in records)


def test_build_trainer_wires_model_compile(tiny_cfg, tmp_path):
    from ssl_zoo.engine.defaults import build_trainer

    cfg = tiny_cfg.clone()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.MODEL.COMPILE, cfg.MODEL.COMPILE_BACKEND = True, "aot_eager"
    trainer = build_trainer(cfg)
    assert type(trainer.unwrapped_model.forward).__name__ == "_CompiledWithFallback"
    cfg.MODEL.COMPILE = False
    assert not hasattr(build_trainer(cfg).unwrapped_model.forward, "failed")

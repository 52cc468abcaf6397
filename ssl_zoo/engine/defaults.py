"""What every training script does (after detectron2's ``engine/defaults.py``): parse the
command line, set up the output directory / logging / seeds, and assemble a trainer
from a config.

``build_trainer`` is the only place that maps config keys to the engine's parts. It
imports the model / solver / data modules lazily, so the engine itself does not depend
on them.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.checkpoint.checkpointer import Checkpointer, load_file, strip_prefixes
from ssl_zoo.engine import hooks as H
from ssl_zoo.engine.compile import compile_method
from ssl_zoo.engine.trainer import SSLTrainer
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import collect_env_info, device_from_cfg, seed_all
from ssl_zoo.utils.logger import setup_logger

logger = logging.getLogger(__name__)

__all__ = ["default_argument_parser", "default_setup", "build_trainer", "load_backbone_weights", "amp_dtype_from_cfg"]


def default_argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line of ``tools/train_net.py`` (detectron2's flags)."""
    parser = argparse.ArgumentParser(epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a YAML config file")
    parser.add_argument("--resume", action="store_true",
                        help="resume from OUTPUT_DIR/last_checkpoint (model, optimizer, iteration, hooks, RNG); "
                             "without it, training starts from MODEL.WEIGHTS or random init")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (GPUs; CPU processes without CUDA)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine")
    parser.add_argument("--dist-url", default="auto",
                        help='tcp://<machine 0 address>:<port>; "auto" = a free local port (one machine)')
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.IMS_PER_BATCH 256")
    return parser


def launch_cli(main_func, args: argparse.Namespace, setup_cfg, user_errors: tuple = ()) -> None:
    """The ``__main__`` of a tool with ``default_argument_parser``'s flags.

    Merges the config with ``setup_cfg(args)`` first, so a bad file or key fails before any
    process is spawned; ``--print-config`` prints it and exits; otherwise ``main_func(args)``
    runs in every process (``ssl_zoo.engine.launch.launch``). ``ConfigError`` and ``user_errors``
    (e.g. a missing weights file) end the program with ``error: <message>``, no traceback.
    """
    from ssl_zoo.config import ConfigError
    from ssl_zoo.engine.launch import launch

    try:
        cfg = setup_cfg(args)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    if args.print_config:
        print(cfg.dump())
        sys.exit(0)
    try:
        launch(main_func, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except tuple(user_errors) as e:
        sys.exit(f"error: {e}")


def default_setup(cfg, args: Optional[argparse.Namespace] = None) -> None:
    """Output directory, loggers, environment report, merged config dump, seeds, cuDNN.

    Writes ``OUTPUT_DIR/config.yaml`` (the fully merged config, so the run can be repeated
    with ``--config-file OUTPUT_DIR/config.yaml``) and ``OUTPUT_DIR/log.txt``.
    """
    output_dir = cfg.OUTPUT_DIR
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    comm.synchronize()
    rank = comm.get_rank()
    for name in ("ssl_zoo", "ssl_zoo_methods"):
        setup_logger(output_dir or None, distributed_rank=rank, name=name)
    logger.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    logger.info("Environment info:\n" + collect_env_info())
    if args is not None:
        logger.info(f"Command line: {' '.join(sys.argv)}\nArguments: {args}")
        if getattr(args, "config_file", ""):
            with open(args.config_file) as f:
                logger.info(f"Contents of {args.config_file}:\n{f.read()}")
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        with open(path, "w") as f:
            f.write(cfg.dump())
        logger.info(f"Full config saved to {path}")
    seed = seed_all(cfg.SEED)
    logger.info(f"Seed: {seed}{' (drawn because SEED < 0)' if cfg.SEED < 0 else ''} (+ rank {rank})")
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Initialise ``backbone`` from ``path``: one of our checkpoints (keys ``backbone.*`` are
    used), a ``{"model": state_dict}`` or a bare state dict (e.g. torchvision's). Missing /
    unexpected keys (a classifier ``fc.*``) are logged, not fatal."""
    data = load_file(path)
    state = strip_prefixes(data.get("model", data) if isinstance(data, dict) else data)
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    result = backbone.load_state_dict(state, strict=False)
    logger.info(f"Initialised the backbone from {path}; missing keys: {result.missing_keys}; "
                f"unexpected keys: {result.unexpected_keys}")


def amp_dtype_from_cfg(cfg, device: Optional[torch.device] = None) -> Optional[torch.dtype]:
    """Autocast dtype of SOLVER.AMP (None = fp32); bf16 falls back to fp32 on CPUs without native bf16.

    AMP applies only on the device types in SOLVER.AMP.DEVICES (the ImageNet configs: CUDA only).
    """
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    if device is not None and device.type not in tuple(cfg.SOLVER.AMP.DEVICES):
        return None
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.SOLVER.AMP.DTYPE not in dtypes:
        raise ValueError(f"SOLVER.AMP.DTYPE must be one of {sorted(dtypes)}, got '{cfg.SOLVER.AMP.DTYPE}'")
    dtype = dtypes[cfg.SOLVER.AMP.DTYPE]
    if device is not None and device.type == "cpu" and dtype == torch.bfloat16 and not _cpu_has_bf16():
        # Without native bf16 (AVX-512 BF16 / AMX) oneDNN emulates it, which is slower than fp32.
        logger.warning("SOLVER.AMP: this CPU has no native bfloat16 support; training in float32 instead.")
        return None
    return dtype


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def build_hooks(cfg, model: nn.Module, checkpointer: Checkpointer, schedule, device: torch.device) -> List[H.HookBase]:
    """LRScheduler, the method's hooks, monitors, then checkpointing and writers (see ``hooks``' order note)."""
    hooks: List[H.HookBase] = [H.LRScheduler(schedule)]
    hooks += list(model.hooks())
    if cfg.DATASETS.KNN_TRAIN:
        if not cfg.DATASETS.KNN_TEST:
            raise ValueError("DATASETS.KNN_TRAIN is set but DATASETS.KNN_TEST is empty: the kNN monitor needs both.")
        from ssl_zoo.data.build import build_eval_loader

        hooks.append(H.KNNMonitor(
            lambda: model.backbone,
            build_eval_loader(cfg, cfg.DATASETS.KNN_TRAIN),
            build_eval_loader(cfg, cfg.DATASETS.KNN_TEST),
            period=cfg.TEST.KNN_PERIOD, ks=tuple(cfg.TEST.KNN_K), temperature=cfg.TEST.KNN_TEMPERATURE, device=device,
        ))
    hooks.append(H.CollapseMonitor(cfg.LOG.COLLAPSE_PERIOD, cfg.LOG.COLLAPSE_MIN_RANK))
    if cfg.LOG.SUMMARY:
        hooks.append(H.TrainingSummary(cfg.OUTPUT_DIR, period=cfg.LOG.PERIOD))
    hooks.append(H.PeriodicCheckpointer(checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))
    hooks.append(H.MetricsWriter(cfg.OUTPUT_DIR, cfg.LOG.PERIOD, tensorboard=cfg.LOG.TENSORBOARD))
    if cfg.LOG.PROGRESS_BAR:
        hooks.append(H.ProgressBar())
    return hooks


def build_trainer(cfg, resume: bool = False) -> SSLTrainer:
    """Assemble the trainer for ``cfg`` (call after ``default_setup``, in every process).

    Order matters: the model is built, converted (SyncBN, channels_last) and restored
    from the checkpoint BEFORE the optimizer state is loaded and BEFORE the data loader
    is built, because the loader must start at the resumed iteration.

    Iterations vs. batches: one trainer iteration is one optimizer step =
    ``SOLVER.ACCUM_STEPS`` loader batches, so the loader is built with
    ``start_iter * ACCUM_STEPS``; an epoch has ``num_images / (IMS_PER_BATCH * ACCUM_STEPS)``
    optimizer steps (fractional, as ``build_lr_schedule`` expects) and, from SOLVER.EPOCHS,
    ``max_iter = EPOCHS * num_images // (IMS_PER_BATCH * ACCUM_STEPS)`` (BYOL's K).
    """
    from ssl_zoo.data.build import build_train_loader
    from ssl_zoo.modeling.method import build_method
    from ssl_zoo.solver.build import build_lr_schedule, build_optimizer

    device = device_from_cfg(cfg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    model = build_method(cfg).to(device)
    if cfg.MODEL.SYNC_BN and comm.get_world_size() > 1:
        from ssl_zoo.modeling.batchnorm import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
    if cfg.MODEL.CHANNELS_LAST and device.type in tuple(cfg.MODEL.CHANNELS_LAST_DEVICES):
        model = model.to(memory_format=torch.channels_last)
    if cfg.MODEL.COMPILE:
        compile_method(model, backend=cfg.MODEL.COMPILE_BACKEND)
    optimizer = build_optimizer(cfg, model)
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, model, optimizer)

    state: Dict[str, Any] = {}
    if resume and checkpointer.has_checkpoint():
        state = checkpointer.load(checkpointer.get_checkpoint_file())  # model, optimizer, RNG
    else:
        if resume:
            logger.info(f"--resume: no checkpoint in {cfg.OUTPUT_DIR}, starting from scratch.")
        if cfg.MODEL.WEIGHTS:
            load_backbone_weights(model.backbone, cfg.MODEL.WEIGHTS)
    start_iter = int(state.get("iteration", 0))

    accum = int(cfg.SOLVER.ACCUM_STEPS)
    data = build_train_loader(cfg, start_iter=start_iter * accum)
    # Fractional steps per epoch, so that BYOL's K = 1000 x 1281167 // 4096 = 312,784 and its
    # warm-up of 3,127 steps come out exactly (an integer 312 steps/epoch would give 312,000).
    num_images = getattr(data, "num_images", 0)
    eff_batch = int(cfg.SOLVER.IMS_PER_BATCH) * accum
    steps_per_epoch = num_images / eff_batch if num_images else data.iters_per_epoch / accum
    if cfg.SOLVER.MAX_ITER > 0:
        max_iter = int(cfg.SOLVER.MAX_ITER)
    else:
        max_iter = int(cfg.SOLVER.EPOCHS * num_images // eff_batch) if num_images else int(cfg.SOLVER.EPOCHS * steps_per_epoch)
    schedule = build_lr_schedule(cfg, steps_per_epoch, max_iter)

    ddp_model: nn.Module = model
    if comm.get_world_size() > 1:
        # Buffers (BN statistics) are broadcast from rank 0 once at construction, not at every
        # forward: SyncBN keeps them equal when enabled; otherwise each process keeps its own
        # and rank 0's are checkpointed (torch >= 2.14 renamed the switch).
        ddp_params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
        sync_kw = {"forward_sync_buffers": False} if "forward_sync_buffers" in ddp_params else {"broadcast_buffers": False}
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=False, **sync_kw,
        )
    trainer = SSLTrainer(
        ddp_model, optimizer, data, max_iter, accum_steps=accum, amp_dtype=amp_dtype_from_cfg(cfg, device),
        clip_grad_norm=cfg.SOLVER.CLIP_GRAD_NORM, device=device,
        hooks=build_hooks(cfg, model, checkpointer, schedule, device),
    )
    if state:
        trainer.load_state_dict(state)
    logger.info(f"Training {type(model).__name__} for {max_iter} iterations ({steps_per_epoch:.2f} per epoch, "
                f"{accum} micro-batch(es) each), starting at {trainer.start_iter}.")
    return trainer

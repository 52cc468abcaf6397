"""What every training script does (after detectron2's ``engine/defaults.py``): parse the
command line, set up the output directory / logging / seeds, and assemble a trainer
from a config.

``build_trainer`` is the only place that maps config keys to the engine's parts (model,
optimizer, data, hooks).
"""
from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import sys
import tempfile
import traceback
from datetime import timedelta
from typing import Any, Dict, List, Optional

import torch
import torch.multiprocessing as mp
from torch import nn

from ssl_zoo.checkpoint.checkpointer import Checkpointer
from ssl_zoo.checkpoint.files import CheckpointError, remove_orphan_tmp
from ssl_zoo.checkpoint.run_dir import RunDirLock, RunDirLockedError, check_fresh_start
from ssl_zoo.config import ConfigError
from ssl_zoo.data.build import build_eval_loader, build_train_loader
from ssl_zoo.data.catalog import has_labels
from ssl_zoo.engine import hooks as H
from ssl_zoo.engine.compile import compile_method
from ssl_zoo.engine.log_lines import PeriodicLogLine, log_model_size
from ssl_zoo.engine.launch import DEFAULT_TIMEOUT, collective_timeout_message, launch
from ssl_zoo.engine.trainer import SSLTrainer, TrainingInterrupted
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.batchnorm import convert_sync_batchnorm
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver.build import build_lr_schedule, build_optimizer
from ssl_zoo.utils.file_io import atomic_write
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import amp_dtype_from_cfg, collect_env_info, device_from_cfg, seed_all
from ssl_zoo.utils.logger import setup_logger
from ssl_zoo.utils.resources import resolve_config_file

logger = logging.getLogger(__name__)

__all__ = ["default_argument_parser", "default_setup", "build_trainer", "launch_cli"]


def default_argument_parser(epilog: Optional[str] = None, description: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line of ``ssl-zoo-train`` / ``tools/train_net.py`` (detectron2's flags).

    Overrides are a ``nargs="*"`` positional, so ``parser.parse_intermixed_args()`` accepts
    flags before, between and after the ``KEY VALUE`` pairs (``... OUTPUT_DIR out --resume``).
    """
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a YAML config file")
    parser.add_argument("--resume", action="store_true",
                        help="resume from OUTPUT_DIR/last_checkpoint (model, optimizer, iteration, hooks, RNG); "
                             "without it, training starts from MODEL.WEIGHTS or random init")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a fresh run even though OUTPUT_DIR holds checkpoints of an earlier one "
                             "(they are deleted); without it (or --resume) such a start is refused")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT.total_seconds(), metavar="SECONDS",
                        help="timeout of collective operations: a frozen or dead process makes the others fail "
                             "with a clear error after this long (default %(default)g)")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (GPUs; CPU processes without CUDA)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine")
    parser.add_argument("--dist-url", default="auto",
                        help='tcp://<machine 0 address>:<port>; "auto" = a free local port (one machine)')
    parser.add_argument("opts", default=[], nargs="*", metavar="KEY VALUE",
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.IMS_PER_BATCH 256 (flags may "
                             "come before or after them)")
    return parser


# User errors: one `error:` line (the traceback with --debug). FloatingPointError is a diverged run,
# OSError a missing / unreadable / full disk; RunDirLockedError a second run into one OUTPUT_DIR.
USER_ERRORS = (FileNotFoundError, ValueError, KeyError, OSError, FloatingPointError, RunDirLockedError)


def error_line(err: BaseException) -> str:
    """``error: <message>`` on one line (KeyError's quotes removed)."""
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return "error: " + " ".join(str(msg).split())


def launch_cli(main_func, args: argparse.Namespace, setup_cfg, user_errors: tuple = ()) -> None:
    """The ``__main__`` of a tool with ``default_argument_parser``'s flags.

    Merges the config with ``setup_cfg(args)`` first, so a bad file or key fails before any
    process is spawned; ``--print-config`` prints it and exits; otherwise ``main_func(args)``
    runs in every process (``ssl_zoo.engine.launch.launch``). User errors (``USER_ERRORS``,
    ``user_errors``, collective timeouts) end the program with ONE ``error: <message>`` line,
    also under ``--num-gpus`` (the workers report to the launcher, which prints the lowest
    rank's line); ``--debug`` prints the traceback too. SIGTERM / SIGINT end training at a
    step boundary with a checkpoint, a one-line note and exit status 128 + signal.
    """
    debug = getattr(args, "debug", False)
    try:
        cfg = setup_cfg(args)
    except (ConfigError,) + USER_ERRORS + tuple(user_errors) as e:
        if debug:
            traceback.print_exc()
        sys.exit(error_line(e))
    if args.print_config:
        print(cfg.dump())
        sys.exit(0)
    report_dir = tempfile.mkdtemp(prefix="ssl_zoo_errors_")
    try:
        launch(_cli_main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(main_func, args, tuple(user_errors), report_dir),
               timeout=timedelta(seconds=float(getattr(args, "dist_timeout", DEFAULT_TIMEOUT.total_seconds()))))
    except _CliExit as e:  # single process: _cli_main already decided
        _exit_with_report(report_dir, e.code)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
        if not os.listdir(report_dir):  # a crash, not a reported error: keep torch's report
            shutil.rmtree(report_dir, ignore_errors=True)
            raise
        _exit_with_report(report_dir, getattr(e, "exit_code", 1) or 1)
    shutil.rmtree(report_dir, ignore_errors=True)


class _CliExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _exit_with_report(report_dir: str, code: int) -> None:
    lines = []
    for name in sorted(os.listdir(report_dir), key=lambda n: int(n.split(".")[0])):
        with open(os.path.join(report_dir, name)) as f:
            lines.append(f.read().strip())
    shutil.rmtree(report_dir, ignore_errors=True)
    if lines:
        print(lines[0], file=sys.stderr, flush=True)
    sys.exit(code)


def _cli_main(main_func, args, user_errors: tuple, report_dir: str):
    """Runs in every process: ``main_func(args)``, with user errors written to ``report_dir/<rank>``."""
    try:
        return main_func(args)
    except TrainingInterrupted as e:
        _report(report_dir, str(e))
        code = 128 + e.signum
    except (ConfigError,) + USER_ERRORS + tuple(user_errors) + (RuntimeError,) as e:
        timeout = collective_timeout_message(e)
        if timeout is None and isinstance(e, RuntimeError) and not isinstance(e, USER_ERRORS + tuple(user_errors)):
            raise  # a bug, not a user error: full traceback
        if getattr(args, "debug", False):
            traceback.print_exc()
        _report(report_dir, "error: " + timeout if timeout else error_line(e))
        code = 1
    if comm.get_world_size() > 1:
        sys.exit(code)  # the launcher sees the exit code and prints the report
    raise _CliExit(code)


def _report(report_dir: str, line: str) -> None:
    with open(os.path.join(report_dir, f"{comm.get_rank()}.txt"), "w") as f:
        f.write(line + "\n")


_RUN_LOCKS: Dict[str, RunDirLock] = {}  # output dir -> this process's lock (held until exit)


def default_setup(cfg, args: Optional[argparse.Namespace] = None) -> None:
    """Output directory, run-directory lock, loggers, environment report, config dump, seeds, cuDNN.

    For training (``args`` with ``resume``): the main process locks OUTPUT_DIR (a second
    concurrent run is refused), refuses a fresh start over an earlier run's checkpoints unless
    ``--resume`` or ``--overwrite`` (which deletes them), and removes temp files of killed writes.

    Writes ``OUTPUT_DIR/config.yaml`` (the fully merged config, so the run can be repeated
    with ``--config-file OUTPUT_DIR/config.yaml``) and ``OUTPUT_DIR/log.txt``; with ``--resume``
    config.yaml is written by ``build_trainer`` only once the checkpoint has loaded, so a failed
    resume leaves the run's config.yaml as it was.
    """
    output_dir = cfg.OUTPUT_DIR
    training = args is not None and hasattr(args, "resume")
    resume = bool(getattr(args, "resume", False))
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        if training:
            claim_run_dir(output_dir, resume=resume, overwrite=bool(getattr(args, "overwrite", False)))
    comm.synchronize()
    rank = comm.get_rank()
    for name in ("ssl_zoo", "ssl_zoo_methods"):
        setup_logger(output_dir or None, distributed_rank=rank, name=name)
    logger.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    logger.info("Environment info:\n" + collect_env_info())
    if args is not None:
        logger.info(f"Command line: {' '.join(sys.argv)}\nArguments: {args}")
        if getattr(args, "config_file", ""):
            config_file = resolve_config_file(args.config_file)
            with open(config_file) as f:
                logger.info(f"Contents of {config_file}:\n{f.read()}")
    if not resume:
        save_config(cfg)
    seed = seed_all(cfg.SEED)
    logger.info(f"Seed: {seed}{' (drawn because SEED < 0)' if cfg.SEED < 0 else ''} (+ rank {rank})")
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)


def claim_run_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Lock ``output_dir`` for this process, check it may start here, clean up killed writes."""
    key = os.path.abspath(output_dir)
    if key not in _RUN_LOCKS:
        _RUN_LOCKS[key] = RunDirLock(output_dir).acquire()
    existing = check_fresh_start(output_dir, resume=resume, overwrite=overwrite)
    remove_orphan_tmp(output_dir)
    if existing and overwrite and not resume:
        for path in existing + [os.path.join(output_dir, "last_checkpoint")]:
            if os.path.exists(path):
                os.remove(path)
        logger.warning(f"--overwrite: deleted {len(existing)} checkpoint(s) of the earlier run in {output_dir}.")


def save_config(cfg) -> None:
    """Write ``OUTPUT_DIR/config.yaml`` atomically (main process)."""
    if comm.is_main_process() and cfg.OUTPUT_DIR:
        path = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
        text = cfg.dump().encode()
        atomic_write(path, lambda f: f.write(text))
        logger.info(f"Full config saved to {path}")


def build_hooks(cfg, model: nn.Module, checkpointer: Checkpointer, schedule, device: torch.device) -> List[H.HookBase]:
    """LRScheduler, monitors, then checkpointing and writers (see ``hooks``' order note)."""
    hooks: List[H.HookBase] = [H.LRScheduler(schedule)]
    if cfg.DATASETS.KNN_TRAIN:
        if not cfg.DATASETS.KNN_TEST:
            raise ValueError("DATASETS.KNN_TRAIN is set but DATASETS.KNN_TEST is empty: the kNN monitor needs both.")

        hooks.append(H.KNNMonitor(
            lambda: model.backbone,
            build_eval_loader(cfg, cfg.DATASETS.KNN_TRAIN),
            build_eval_loader(cfg, cfg.DATASETS.KNN_TEST),
            period=cfg.TEST.KNN_PERIOD, ks=tuple(cfg.TEST.KNN_K), temperature=cfg.TEST.KNN_TEMPERATURE, device=device,
        ))
    hooks.append(H.CollapseMonitor(cfg.LOG.COLLAPSE_PERIOD, cfg.LOG.COLLAPSE_MIN_RANK))
    if cfg.LOG.SUMMARY:
        hooks.append(H.TrainingSummary(cfg.OUTPUT_DIR, period=cfg.LOG.PERIOD))
    # The writer before the checkpointer: a step's metrics are on disk before its checkpoint.
    hooks.append(H.MetricsWriter(cfg.OUTPUT_DIR, cfg.LOG.PERIOD, tensorboard=cfg.LOG.TENSORBOARD,
                                 checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD))
    hooks.append(H.PeriodicCheckpointer(checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                        max_to_keep=cfg.SOLVER.CHECKPOINT_MAX_TO_KEEP))
    # A terminal gets the tqdm bar (the plain lines go to log.txt only); a redirected console gets
    # the plain lines instead of a bar that would be one \r-joined line (log_lines.py).
    bar = bool(cfg.LOG.PROGRESS_BAR) and sys.stderr.isatty()
    hooks.append(PeriodicLogLine(cfg.LOG.PERIOD or 20, to_console=not (bar and sys.stdout.isatty())))
    if bar:
        hooks.append(H.ProgressBar())
    return hooks


ONLINE_CLASSIFIER_KEY = "ONLINE_CLASSIFIER_CLASSES"  # a method node's monitoring classifier (BYOL.*)


def disable_classifier_without_labels(cfg):
    """``cfg``, or a copy with the online classifier off (with a warning) when DATASETS.TRAIN has no labels.

    Labels are optional in pretraining: the paper configs monitor with an online linear
    classifier (``BYOL.ONLINE_CLASSIFIER_CLASSES: 1000``), which cannot train on a folder of
    unlabeled images. Decided from the dataset spec before the model is built, so a resumed
    run builds the same model (its checkpoint has no classifier either).
    """
    nodes = [k for k, v in cfg.items() if hasattr(v, "get") and int(v.get(ONLINE_CLASSIFIER_KEY, 0) or 0) > 0]
    if not nodes or has_labels(cfg.DATASETS.TRAIN, cfg.DATASETS.FOLDER_LABELS):
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    for node in nodes:
        logger.warning(f"DATASETS.TRAIN '{cfg.DATASETS.TRAIN}' has no labels: the online classifier "
                       f"{node}.{ONLINE_CLASSIFIER_KEY}={cfg[node][ONLINE_CLASSIFIER_KEY]} is disabled "
                       f"(set it to 0 to silence this).")
        cfg[node][ONLINE_CLASSIFIER_KEY] = 0
    cfg.freeze()
    return cfg


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
    device = device_from_cfg(cfg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    cfg = disable_classifier_without_labels(cfg)
    model = build_method(cfg).to(device)
    if comm.is_main_process():
        log_model_size(model, model.backbone, cfg.INPUT.IMAGE_SIZE, device)
    if cfg.MODEL.SYNC_BN and comm.get_world_size() > 1:
        model = convert_sync_batchnorm(model)
    if cfg.MODEL.CHANNELS_LAST and device.type in tuple(cfg.MODEL.CHANNELS_LAST_DEVICES):
        model = model.to(memory_format=torch.channels_last)
    if cfg.MODEL.COMPILE:
        compile_method(model, backend=cfg.MODEL.COMPILE_BACKEND)
    optimizer = build_optimizer(cfg, model, lr_rules=type(model).lr_rules(cfg))
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, model, optimizer, max_abs=cfg.SOLVER.CHECKPOINT_MAX_ABS)

    state: Dict[str, Any] = {}
    found, data = checkpointer.find_resumable() if resume else ("", None)
    if found:  # the pointer's file, or the newest that loads (raises if some exist but none loads)
        state = checkpointer.load(found, data=data)  # model, optimizer, RNG
    else:
        if resume:
            logger.info(f"--resume: no checkpoint in {cfg.OUTPUT_DIR}, starting from scratch.")
        if cfg.MODEL.WEIGHTS:
            try:  # any --weights spec; every backbone tensor covered, or an error (never a silent random init)
                load_backbone_weights(model.backbone, cfg.MODEL.WEIGHTS)
            except CheckpointError:
                raise  # names the file and what is wrong with it
            except ValueError as e:
                raise ValueError(f"MODEL.WEIGHTS '{cfg.MODEL.WEIGHTS}': {e}") from None
            model.on_backbone_loaded()  # BYOL's target / MoCo's key encoder start from the loaded weights too
    if resume:  # only now: a failed resume must leave the run's config.yaml as it was
        save_config(cfg)
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

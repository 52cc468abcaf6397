"""Start one training process per GPU (or N CPU processes), after detectron2's ``launch``.

- CUDA: ``num_gpus_per_machine`` processes per machine, NCCL, process i uses GPU i.
- CPU: ``num_gpus_per_machine`` is the number of processes, gloo (useful to test
  distributed code paths on a laptop).
- ``dist_url="auto"`` (single machine only): a free TCP port on 127.0.0.1.
- Started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set): the process group is
  initialised from the environment and ``main_func`` is called directly.

Every process gets ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` in its environment, which
``ssl_zoo.utils.comm.get_local_rank`` reads.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)

__all__ = ["launch", "DEFAULT_TIMEOUT"]


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # the OS picks a free port
        return sock.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str = "auto", args: Sequence[Any] = (), timeout: timedelta = DEFAULT_TIMEOUT) -> None:
    """Run ``main_func(*args)`` in every process of a (possibly single-process) job.

    Args:
        main_func: module-level function (it is pickled to the spawned processes).
        num_gpus_per_machine: processes per machine (GPUs on CUDA, CPU processes otherwise).
        num_machines / machine_rank: multi-machine jobs (same ``dist_url`` on every machine).
        dist_url: ``tcp://host:port`` of machine 0, or "auto" (one machine only).
        args: arguments of ``main_func``.
        timeout: of collective operations.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun / SLURM-style env
        _run_from_env(main_func, args, timeout)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError('dist_url="auto" only works on one machine; give tcp://<machine 0>:<port>.')
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init on several machines needs a shared filesystem.")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout),
        daemon=False,
        start_method="spawn",  # fork is unsafe with CUDA and with threads of an initialised torch
    )


def _distributed_worker(local_rank: int, main_func, world_size: int, num_per_machine: int, machine_rank: int,
                        dist_url: str, args: tuple, timeout: timedelta) -> None:
    backend = _backend()
    if backend == "nccl" and num_per_machine > torch.cuda.device_count():
        raise RuntimeError(f"{num_per_machine} processes per machine requested but only "
                           f"{torch.cuda.device_count()} GPUs are visible.")
    global_rank = machine_rank * num_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_per_machine)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size, rank=global_rank,
                                timeout=timeout)
    except Exception as e:
        raise RuntimeError(f"Process group initialisation failed at {dist_url}: {e}") from e
    try:
        comm.synchronize()
        main_func(*args)
    finally:
        dist.destroy_process_group()


def _run_from_env(main_func, args, timeout: timedelta) -> None:
    backend = _backend()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    owned = not dist.is_initialized()  # only tear down a group we created
    if owned:
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    try:
        comm.synchronize()
        main_func(*args)
    finally:
        if owned:
            dist.destroy_process_group()

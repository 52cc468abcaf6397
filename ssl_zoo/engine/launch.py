"""Start one training process per GPU (or N CPU processes), after detectron2's ``launch``.

- CUDA: ``num_gpus_per_machine`` processes per machine, NCCL, process i uses GPU i.
- CPU: ``num_gpus_per_machine`` is the number of processes, gloo (useful to test
  distributed code paths on a laptop).
- ``dist_url="auto"`` (single machine only): a free TCP port on 127.0.0.1.
- Started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set): the process group is
  initialised from the environment and ``main_func`` is called directly.

Every process gets ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` in its environment, which
``ssl_zoo.utils.comm.get_local_rank`` reads.

Nothing hangs:

- collectives time out after ``timeout`` (``--dist-timeout``, 10 min by default instead of
  torch's 30), and :func:`collective_timeout_message` turns the backend's error into a line
  naming the rank and the timeout;
- workers exit when their launcher dies: torch's spawn sets ``PR_SET_PDEATHSIG`` to SIGINT
  (the trainer then stops at the next step boundary, with a checkpoint), and a watchdog
  thread ends a worker that is still alive ``orphan_grace_s`` later (e.g. blocked in a
  collective with a dead peer), also on systems without prctl;
- SIGTERM / SIGINT sent to the launcher are forwarded to the workers, which stop cleanly.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)

# torch's default is 30 min; a frozen rank should not idle the others that long. 10 min still
# covers a multi-GB checkpoint written by rank 0 while the others wait at the next collective.
DEFAULT_TIMEOUT = timedelta(minutes=10)
DEFAULT_ORPHAN_GRACE_S = 60.0

__all__ = ["launch", "DEFAULT_TIMEOUT", "CollectiveTimeoutError", "collective_timeout_message"]

_TIMEOUT: Optional[timedelta] = None  # this worker's collective timeout (for error messages)


class CollectiveTimeoutError(RuntimeError):
    """A collective operation did not complete in time (a peer is frozen or dead)."""


def collective_timeout_message(err: BaseException) -> Optional[str]:
    """A one-line explanation if ``err`` is a collective timeout of this process, else None."""
    text = str(err)
    low = text.lower()
    from_backend = isinstance(err, getattr(dist, "DistError", ())) or any(w in low for w in ("gloo", "nccl", "collective"))
    if not (dist.is_available() and dist.is_initialized()) or not from_backend or not any(
            w in low for w in ("timed out", "timeout", "connection closed by peer", "connection reset")):
        return None
    seconds = _TIMEOUT.total_seconds() if _TIMEOUT is not None else float("nan")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")[:160]
    what = (f"a collective operation did not complete within {seconds:g} s (--dist-timeout): another process is "
            f"frozen or died" if "time" in low else "a collective operation lost its connection: another process died")
    return (f"rank {dist.get_rank()} of {dist.get_world_size()}: {what} ({first}). The last checkpoint is intact; "
            f"rerun with --resume.")


def _watch_parent(parent_pid: int, grace_s: float) -> None:
    """Daemon thread: end this worker ``grace_s`` after its launcher died (it was re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    logger.warning(f"The launcher (pid {parent_pid}) died: stopping this worker (within {grace_s:g} s).")
    time.sleep(grace_s)  # SIGINT from PR_SET_PDEATHSIG lets the trainer save and exit meanwhile
    os._exit(1)


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # the OS picks a free port
        return sock.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str = "auto", args: Sequence[Any] = (), timeout: timedelta = DEFAULT_TIMEOUT,
           orphan_grace_s: float = DEFAULT_ORPHAN_GRACE_S) -> None:
    """Run ``main_func(*args)`` in every process of a (possibly single-process) job.

    Args:
        main_func: module-level function (it is pickled to the spawned processes).
        num_gpus_per_machine: processes per machine (GPUs on CUDA, CPU processes otherwise).
        num_machines / machine_rank: multi-machine jobs (same ``dist_url`` on every machine).
        dist_url: ``tcp://host:port`` of machine 0, or "auto" (one machine only).
        args: arguments of ``main_func``.
        timeout: of collective operations.
        orphan_grace_s: a worker whose launcher died exits at the latest this long after.

    Raises:
        torch.multiprocessing.ProcessRaisedException / ProcessExitedException: a worker failed
            (the others were stopped).
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
    context = mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout,
              os.getpid(), orphan_grace_s),
        daemon=False,
        start_method="spawn",  # fork is unsafe with CUDA and with threads of an initialised torch
        join=False,
    )
    previous = {}

    def forward(signum, frame):  # the workers save a checkpoint at the next step boundary and exit
        for pid in context.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not context.join():
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _distributed_worker(local_rank: int, main_func, world_size: int, num_per_machine: int, machine_rank: int,
                        dist_url: str, args: tuple, timeout: timedelta, parent_pid: int = 0,
                        orphan_grace_s: float = DEFAULT_ORPHAN_GRACE_S) -> None:
    global _TIMEOUT
    _TIMEOUT = timeout
    if parent_pid:
        threading.Thread(target=_watch_parent, args=(parent_pid, orphan_grace_s), daemon=True,
                         name="ssl_zoo-parent-watchdog").start()
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
    global _TIMEOUT
    _TIMEOUT = timeout
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

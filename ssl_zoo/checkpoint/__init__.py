"""Checkpointing: atomic, safe saves, ``last_checkpoint`` pointer, exact resume, run-directory lock."""
from ssl_zoo.checkpoint.checkpointer import Checkpointer, strip_prefixes, unwrap_model
from ssl_zoo.checkpoint.files import CheckpointError, DiskFullError, UnsafeCheckpointError, load_file
from ssl_zoo.checkpoint.periodic import PeriodicCheckpointer
from ssl_zoo.checkpoint.run_dir import ExistingRunError, RunDirLock, RunDirLockedError, check_fresh_start

__all__ = ["CheckpointError", "Checkpointer", "DiskFullError", "ExistingRunError", "PeriodicCheckpointer",
           "RunDirLock", "RunDirLockedError", "UnsafeCheckpointError", "check_fresh_start", "load_file",
           "strip_prefixes", "unwrap_model"]

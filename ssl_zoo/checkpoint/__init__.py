"""Checkpointing: atomic saves, ``last_checkpoint`` pointer, exact resume."""
from ssl_zoo.checkpoint.checkpointer import Checkpointer, strip_prefixes, unwrap_model

__all__ = ["Checkpointer", "strip_prefixes", "unwrap_model"]

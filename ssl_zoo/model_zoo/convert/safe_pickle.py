"""A restricted unpickler for checkpoints of JAX / Haiku code (DeepMind's BYOL ``.pkl``).

A pickle is a program: any global it names is imported and may be called, so
``pickle.load`` on a downloaded file can run arbitrary code. This unpickler resolves
globals through an allow-list only:

- numpy's array / dtype / scalar reconstructors (both ``numpy.core`` and numpy 2's
  ``numpy._core`` spellings), with object dtypes refused;
- ``collections.OrderedDict``, ``builtins`` ``set`` / ``frozenset`` / ``slice`` / ``complex``,
  and ``_codecs.encode`` restricted to latin-1 (how Python 3 protocol-2 pickles store bytes);
- the container classes of the upstream code, mapped to **plain data** without importing
  their modules: dill's ``_create_namedtuple`` (BYOL's ``_ByolExperimentState``), Haiku's
  ``frozendict`` / ``FlatMap``, and any class of the ``byol``, ``haiku``, ``optax`` or
  ``jax`` packages become :class:`Record` stand-ins, turned into dicts afterwards.

Everything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
:class:`UnsafePickleError` naming the global, before anything is called. The stand-ins
never execute upstream code, so the worst a crafted file can do is produce odd data.
"""
from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
from typing import Any, Optional

import numpy as np

DEFAULT_MAX_PICKLE_BYTES = 16 * 2**30  # the largest official BYOL file (R200 2x) is ~4.6 GB


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could run code)."""


class Record:
    """Inert stand-in for an upstream class: keeps constructor arguments and state only."""

    __slots__ = ("type_name", "fields", "args", "state")

    def __init__(self, type_name: str, fields=None, args=(), state=None) -> None:
        self.type_name, self.fields, self.args, self.state = type_name, fields, tuple(args), state

    def __setstate__(self, state: Any) -> None:  # BUILD opcode
        self.state = state

    def to_data(self) -> Any:
        """A dict when the record is mapping-like or has named fields, else a dict of its parts."""
        if self.fields is not None and len(self.fields) == len(self.args):
            return dict(zip(self.fields, self.args))
        if len(self.args) == 1 and isinstance(self.args[0], dict):
            return dict(self.args[0])
        if not self.args and isinstance(self.state, dict):
            return dict(self.state)
        return {"__type__": self.type_name, "args": list(self.args), "state": self.state}

    def __repr__(self) -> str:
        return f"Record({self.type_name})"


def _record_type(type_name: str, fields=None) -> type:
    """A class standing in for an upstream type: constructing it (REDUCE ``cls(*args)`` or
    NEWOBJ ``cls.__new__(cls, *args)``, which needs a real type) returns a :class:`Record`."""

    def __new__(cls, *args, **kwargs):
        return Record(type_name, fields, args, kwargs or None)

    return type("RecordOf_" + type_name.replace(".", "_"), (), {"__new__": __new__, "__module__": __name__})


def _create_namedtuple(name, fieldnames, modulename, *unused) -> type:
    """dill's namedtuple-by-value constructor, without creating or importing the class."""
    return _record_type(f"{modulename}.{name}", tuple(fieldnames))


def _latin1_encode(obj: str, encoding: str = "latin1", *unused) -> bytes:
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refusing _codecs.encode with encoding '{encoding}' (only latin-1)")
    return obj.encode("latin1")


def _checked_dtype(*args, **kwargs) -> np.dtype:
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise UnsafePickleError(f"refusing numpy object dtype {dt!r} (arrays of Python objects)")
    return dt


_NUMPY_ALLOWED = {"_reconstruct": None, "scalar": None, "ndarray": None, "dtype": _checked_dtype}
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _latin1_encode,
    ("dill._dill", "_create_namedtuple"): _create_namedtuple,
}
# Packages whose classes are mapped to inert Records (never imported).
_RECORD_PACKAGES = ("byol", "haiku", "optax", "jax", "jaxlib")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only the allow-list above."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY_ALLOWED:
            if _NUMPY_ALLOWED[name] is not None:
                return _NUMPY_ALLOWED[name]
            return np.ndarray if name == "ndarray" else _numpy_internal(name)
        if module.split(".")[0] in _RECORD_PACKAGES and "." not in name:
            return _record_type(f"{module}.{name}")
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}': this checkpoint pickle references code outside "
            "the allow-list (numpy arrays, plain containers, Haiku/BYOL records). It may be malicious or "
            "of an unsupported format; it was not executed."
        )


def _numpy_internal(name: str) -> Any:
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, name)


def to_plain_data(obj: Any) -> Any:
    """Recursively turn Records into dicts and tuples/lists into lists; check arrays."""
    if isinstance(obj, Record):
        return to_plain_data(obj.to_data())
    if isinstance(obj, dict):
        return {k: to_plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain_data(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise UnsafePickleError("refusing numpy array of Python objects")
    return obj


def safe_load_pickle(path_or_bytes, *, max_bytes: Optional[int] = None) -> Any:
    """Unpickle a file (path) or ``bytes`` with :class:`RestrictedUnpickler`, as plain data.

    Args:
        path_or_bytes: a file path or the pickle's bytes.
        max_bytes: refuse larger inputs (default ``DEFAULT_MAX_PICKLE_BYTES``).

    Raises:
        UnsafePickleError: a global outside the allow-list (nothing was executed).
        ValueError: the input is larger than ``max_bytes``.
    """
    limit = DEFAULT_MAX_PICKLE_BYTES if max_bytes is None else max_bytes
    if isinstance(path_or_bytes, (bytes, bytearray)):
        size, opener = len(path_or_bytes), lambda: io.BytesIO(path_or_bytes)
    else:
        size, opener = os.path.getsize(path_or_bytes), lambda: open(path_or_bytes, "rb")
    if size > limit:
        raise ValueError(f"pickle of {size} bytes exceeds the limit of {limit} bytes")
    with opener() as f:
        return to_plain_data(RestrictedUnpickler(f).load())


__all__ = ["Record", "RestrictedUnpickler", "UnsafePickleError", "safe_load_pickle", "to_plain_data"]

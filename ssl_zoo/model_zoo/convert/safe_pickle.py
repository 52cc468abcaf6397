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

Resource limits (a crafted file must not hang or exhaust memory; :class:`PickleLimitError`):

- arrays created by the numpy reconstructors may not, together, exceed the input's size
  plus 1 MiB (a real pickle carries its array bytes; a 300-byte "bomb" asking for a
  ``(10**11,)`` array is refused before it is allocated);
- :func:`to_plain_data` converts each shared object once (memo), refuses reference cycles,
  nesting deeper than ``MAX_DEPTH`` and structures that expand to more than ``MAX_NODES``
  objects when shared references are counted as copies (the "billion laughs" shape).
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
MAX_DEPTH = 100  # Haiku / BYOL checkpoints nest < 10 deep
MAX_NODES = 10_000_000  # a ResNet-200 2x BYOL state has ~10^4 containers and arrays


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could run code)."""


class PickleLimitError(pickle.UnpicklingError, ValueError):
    """The pickle exceeds a resource limit (allocation, nesting, cycles, expansion)."""


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
    """``pickle.Unpickler`` whose ``find_class`` admits only the allow-list above.

    Args:
        file: binary file object.
        max_array_bytes: total bytes the numpy reconstructors may allocate.
    """

    def __init__(self, file, *, max_array_bytes: int = 2**62) -> None:
        super().__init__(file)
        self.array_budget = int(max_array_bytes)

    def _charge(self, shape: Any, dtype: Any) -> None:
        try:
            dims = [int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
            itemsize = np.dtype(dtype).itemsize if not isinstance(dtype, (bytes, str)) else np.dtype(
                dtype.decode("latin1") if isinstance(dtype, bytes) else dtype).itemsize
        except (TypeError, ValueError):
            return  # numpy itself will refuse it
        if any(d < 0 for d in dims):
            raise PickleLimitError(f"refusing numpy array of shape {tuple(dims)}")
        nbytes = int(np.prod(dims, dtype=object)) * max(itemsize, 1)
        if nbytes > self.array_budget:
            raise PickleLimitError(f"refusing to allocate a numpy array of {nbytes} bytes (shape {tuple(dims)}): more "
                                   f"than the pickle can hold; the file is damaged or crafted (a pickle bomb)")
        self.array_budget -= nbytes

    def _guarded(self, name: str) -> Any:
        """``ndarray`` / ``_reconstruct`` that charge the allocation to ``array_budget`` first."""
        if name == "ndarray":
            if not hasattr(self, "_ndarray_type"):
                unpickler = self

                def __new__(cls, shape, dtype=float, *args, **kwargs):  # REDUCE / NEWOBJ of ndarray
                    unpickler._charge(shape, dtype)
                    return np.ndarray(shape, dtype, *args, **kwargs)

                # a real type (NEWOBJ needs one), standing for np.ndarray in _reconstruct's subtype
                self._ndarray_type = type("GuardedNdarray", (), {"__new__": __new__, "__module__": __name__})
            return self._ndarray_type
        real = _numpy_internal(name)
        if name != "_reconstruct":
            return real

        def reconstruct(subtype, shape, dtype, *args):
            if subtype is getattr(self, "_ndarray_type", None):
                subtype = np.ndarray
            if subtype is not np.ndarray:
                raise UnsafePickleError(f"refusing numpy _reconstruct of {subtype!r}")
            self._charge(shape, dtype if not isinstance(dtype, (bytes, str)) else np.uint8)
            return real(subtype, shape, dtype, *args)

        return reconstruct

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY_ALLOWED:
            if _NUMPY_ALLOWED[name] is not None:
                return _NUMPY_ALLOWED[name]
            return self._guarded(name)
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


def to_plain_data(obj: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """Recursively turn Records into dicts and tuples/lists into lists; check arrays.

    Each shared object is converted once (the result is shared too).

    Raises:
        PickleLimitError: a reference cycle, nesting deeper than ``max_depth``, or more than
            ``max_nodes`` objects when shared references are counted as copies.
    """
    memo: dict = {}
    expanded: dict = {}  # id -> size of the tree it expands to
    active: set = set()

    def convert(o: Any, depth: int) -> Any:
        if not isinstance(o, (Record, dict, list, tuple)):
            if isinstance(o, np.ndarray) and o.dtype.hasobject:
                raise UnsafePickleError("refusing numpy array of Python objects")
            return o
        key = id(o)
        if key in memo:
            return memo[key][1]
        if key in active:
            raise PickleLimitError("the pickle contains a reference cycle (a container inside itself); it is "
                                   "damaged or crafted")
        if depth > max_depth:
            raise PickleLimitError(f"the pickle nests containers more than {max_depth} deep; it is damaged or crafted")
        active.add(key)
        if isinstance(o, Record):
            data = o.to_data()
            out = convert(data, depth + 1)
            size = expanded.get(id(data), 1)
        elif isinstance(o, dict):
            out = {k: convert(v, depth + 1) for k, v in o.items()}
            size = 1 + sum(expanded.get(id(v), 1) for v in o.values())
        else:
            out = [convert(v, depth + 1) for v in o]
            size = 1 + sum(expanded.get(id(v), 1) for v in o)
        active.discard(key)
        if size > max_nodes:
            raise PickleLimitError(f"the pickle expands to more than {max_nodes} objects through shared references "
                                   f"(a pickle bomb); refusing it")
        memo[key] = (o, out)  # keeps o alive: a freed temporary's id could be reused
        expanded[key] = size
        return out

    try:
        return convert(obj, 0)
    finally:
        memo.clear()


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
        size, opener, name = len(path_or_bytes), lambda: io.BytesIO(path_or_bytes), "pickle"
    else:
        size, opener, name = os.path.getsize(path_or_bytes), lambda: open(path_or_bytes, "rb"), f"'{path_or_bytes}'"
    if size > limit:
        raise ValueError(f"pickle of {size} bytes exceeds the limit of {limit} bytes")
    if size == 0:
        raise ValueError(f"{name} is empty (0 bytes): the download or copy did not finish")
    with opener() as f:
        try:
            data = RestrictedUnpickler(f, max_array_bytes=size + 2**20).load()
        except (PickleLimitError, UnsafePickleError) as e:
            raise type(e)(f"{name}: {e}") from None
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
                AttributeError, RecursionError, MemoryError) as e:
            raise ValueError(f"{name} is damaged or not a pickle ({type(e).__name__}: {e})") from None
    try:
        return to_plain_data(data)
    except PickleLimitError as e:
        raise PickleLimitError(f"{name}: {e}") from None


__all__ = ["PickleLimitError", "Record", "RestrictedUnpickler", "UnsafePickleError", "safe_load_pickle",
           "to_plain_data"]

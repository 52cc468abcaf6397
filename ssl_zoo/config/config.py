"""Config objects: fvcore's CfgNode (``_BASE_`` inheritance, ``KEY VALUE`` overrides)
with errors that name the file, the key and the nearest valid key.

Only framework keys are declared in ``defaults.py``; every registered method adds
its own node through ``add_config(cfg)`` when ``get_cfg()`` builds the defaults.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import threading
from typing import Any, Callable, Iterable, List, Optional, Tuple

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvCfgNode

from ssl_zoo.config.defaults import _C
from ssl_zoo.modeling.method import METHOD_REGISTRY
from ssl_zoo.utils.resources import resolve_config_file


class ConfigError(ValueError):
    """A config file or override that cannot be applied (unknown key, wrong type, bad file)."""


def _all_keys(cfg: _FvCfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, _FvCfgNode):
            keys.extend(_all_keys(v, full + "."))
    return keys


_LOADING = threading.local()  # the chain of files being loaded through _BASE_ (cycle detection)


class CfgNode(_FvCfgNode):
    """fvcore CfgNode whose merge errors are actionable.

    ``merge_from_file`` resolves ``_BASE_`` recursively (paths relative to the file),
    then checks every key and type against the declared defaults. A ``_BASE_`` cycle, a
    missing base file and an empty or non-mapping YAML file are errors naming the files.
    """

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False):
        chain = getattr(_LOADING, "chain", [])
        key = os.path.realpath(filename) if isinstance(filename, str) else filename
        if key in chain:
            loop = " -> ".join(chain[chain.index(key):] + [key])
            raise ConfigError(f"circular {BASE_KEY}: {loop}")
        if isinstance(filename, str):
            if not os.path.isfile(filename):
                where = f" ({BASE_KEY} of '{chain[-1]}')" if chain else ""
                raise ConfigError(f"config file not found: '{filename}'{where}")
            with open(filename) as f:
                try:
                    content = yaml.safe_load(f)
                except yaml.YAMLError as e:
                    raise ConfigError(f"config file '{filename}' is not valid YAML: {' '.join(str(e).split())}") from None
            if content is None:
                raise ConfigError(f"config file '{filename}' is empty: give at least one KEY: VALUE "
                                  f"(or {BASE_KEY}: <file>)")
            if not isinstance(content, dict):
                raise ConfigError(f"config file '{filename}' must hold a mapping of KEY: VALUE, "
                                  f"not a {type(content).__name__}")
        _LOADING.chain = chain + [key]
        try:
            return super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)
        finally:
            _LOADING.chain = chain

    def _explain(self, err: Exception, source: str) -> ConfigError:
        msg = str(err).strip("'\"")
        m = re.search(r"Non-existent (?:config )?key: (\S+)", msg)  # merge_from_file / merge_from_list wording
        if m:
            key = m.group(1)
            close = difflib.get_close_matches(key, _all_keys(self), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            return ConfigError(f"{source}: unknown config key '{key}'.{hint}")
        m = re.search(r"for config key: (\S+)", msg)
        if m and "Type mismatch" in msg:
            return ConfigError(f"{source}: wrong type for config key '{m.group(1)}': {msg}")
        return ConfigError(f"{source}: {msg}")

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        if not os.path.isfile(cfg_filename):
            raise ConfigError(f"Config file not found: '{cfg_filename}'")
        try:
            super().merge_from_file(cfg_filename, allow_unsafe=allow_unsafe)
        except (KeyError, ValueError, AssertionError) as e:
            if isinstance(e, ConfigError):
                raise
            raise self._explain(e, f"config file '{cfg_filename}'") from None
        except Exception as e:  # yaml syntax errors and the like
            raise ConfigError(f"config file '{cfg_filename}' could not be read: {e}") from None

    def merge_from_list(self, cfg_list: list) -> "CfgNode":
        if len(cfg_list) % 2:
            raise ConfigError(f"Overrides must be KEY VALUE pairs, got an odd number of items: {cfg_list}")
        try:
            return super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as e:
            raise self._explain(e, "command-line override") from None

    def peek(self, dotted_key: str):
        """Value of ``A.B.C``."""
        node = self
        for part in dotted_key.split("."):
            node = node[part]
        return node


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _non_negative(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


# (key, check, requirement): values that pass the type check but make no sense, found by the
# adversarial pass of issue 13 (batch size 0 -> ZeroDivisionError, ACCUM_STEPS 0, IMAGE_SIZE 0, ...).
_VALUE_RULES: List[Tuple[str, Callable[[Any], bool], str]] = [
    ("SOLVER.IMS_PER_BATCH", _positive, "a positive number of images"),
    ("SOLVER.ACCUM_STEPS", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("SOLVER.BASE_LR", _non_negative, "a finite learning rate >= 0"),
    ("SOLVER.REFERENCE_BATCH_SIZE", _positive, "a positive batch size"),
    ("SOLVER.MAX_ITER", _non_negative, ">= 0 (0 = from SOLVER.EPOCHS)"),
    ("SOLVER.EPOCHS", _non_negative, ">= 0"),
    ("SOLVER.CHECKPOINT_PERIOD", _non_negative, ">= 0 (0 = only the final checkpoint)"),
    ("SOLVER.CHECKPOINT_MAX_TO_KEEP", _non_negative, ">= 0 (0 = keep all)"),
    ("INPUT.IMAGE_SIZE", _positive, "a positive number of pixels"),
    ("TEST.IMS_PER_BATCH", _positive, "a positive number of images"),
    ("LOG.PERIOD", _non_negative, ">= 0"),
    ("DATALOADER.NUM_WORKERS", _non_negative, ">= 0"),
]


def validate_config(cfg: CfgNode, source: str = "config") -> None:
    """Refuse values that type-check but cannot work (batch size 0, ACCUM_STEPS 0, ...).

    Raises:
        ConfigError: naming the key, the value and what it must be.
    """
    for key, ok, requirement in _VALUE_RULES:
        try:
            value = cfg.peek(key)
        except KeyError:
            continue
        if not ok(value):
            raise ConfigError(f"{source}: {key} = {value!r} is invalid: it must be {requirement}.")
    if cfg.peek("SOLVER.MAX_ITER") == 0 and cfg.peek("SOLVER.EPOCHS") == 0:
        raise ConfigError(f"{source}: SOLVER.MAX_ITER and SOLVER.EPOCHS are both 0: nothing to train.")


def get_cfg(method_names: Optional[Iterable[str]] = None) -> CfgNode:
    """A fresh copy of the defaults, including the config nodes of registered methods.

    Args:
        method_names: methods whose ``add_config`` to apply (default: every registered
            method, so any method's keys may appear in a YAML file).
    """
    cfg = CfgNode(_C.clone())
    names = list(method_names) if method_names is not None else METHOD_REGISTRY.names()
    for name in names:
        METHOD_REGISTRY.get(name).add_config(cfg)
    return cfg


def load_config(config_file: str = "", opts: Optional[list] = None) -> CfgNode:
    """Defaults <- ``config_file`` (with ``_BASE_``) <- ``KEY VALUE`` overrides, for one method.

    Merged against every registered method's keys, then the nodes of methods other than
    ``MODEL.METHOD`` are dropped, so ``--print-config`` and ``OUTPUT_DIR/config.yaml`` show
    just the keys that matter. Setting a key of another method (a value differing from its
    default) is an error rather than silently ignored.

    ``config_file`` that is not an existing path is looked up among the packaged configs
    (``load_config("byol/quickstart.yaml")`` works after ``pip install ssl_zoo``).
    """
    config_file = resolve_config_file(config_file)
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    defaults = get_cfg()
    keep = set(get_cfg([cfg.MODEL.METHOD]).keys())
    for node in [k for k in cfg.keys() if k not in _C and k not in keep]:
        if cfg[node] != defaults[node]:
            changed = sorted(k for k in cfg[node] if cfg[node][k] != defaults[node][k])
            raise ConfigError(
                f"{config_file or 'command line'}: {node}.{changed[0]} is a key of another method, "
                f"but MODEL.METHOD is '{cfg.MODEL.METHOD}'"
            )
        del cfg[node]
    validate_config(cfg, " + ".join(([config_file] if config_file else []) + (["command line"] if opts else []))
                    or "defaults")
    return cfg

"""Config objects: fvcore's CfgNode (``_BASE_`` inheritance, ``KEY VALUE`` overrides)
with errors that name the file, the key and the nearest valid key.

Only framework keys are declared in ``defaults.py``; every registered method adds
its own node through ``add_config(cfg)`` when ``get_cfg()`` builds the defaults.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable, List, Optional

from fvcore.common.config import CfgNode as _FvCfgNode

from ssl_zoo.config.defaults import _C
from ssl_zoo.modeling.method import METHOD_REGISTRY


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


class CfgNode(_FvCfgNode):
    """fvcore CfgNode whose merge errors are actionable.

    ``merge_from_file`` resolves ``_BASE_`` recursively (paths relative to the file),
    then checks every key and type against the declared defaults.
    """

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
        import os

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
    """
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
    return cfg

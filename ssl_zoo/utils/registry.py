"""A tiny name -> object registry (after fvcore's ``Registry``).

Every pluggable part of ssl_zoo (backbones, heads, losses, optimizers, schedules,
augmentation presets, datasets, methods) is looked up by name in one of these.
Unlike fvcore's version, an unknown name lists the known ones and suggests the
closest, so a typo in a YAML file is a one-glance fix.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import logging
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

logger = logging.getLogger(__name__)


class Registry:
    """Maps names to objects; registering a name twice is an error.

    Examples:
        >>> BACKBONE_REGISTRY = Registry("BACKBONE")
        >>> @BACKBONE_REGISTRY.register()
        ... def resnet18(**kwargs): ...
        >>> BACKBONE_REGISTRY.get("resnet18")

    Plugins: with ``entry_point_group``, the modules that packages declare in that
    entry-point group (``importlib.metadata``) are imported the first time the registry is
    read (``get``, ``in``, iteration, ``names``); importing them registers their objects.
    That is how ``METHOD_REGISTRY`` finds the built-in methods (``ssl_zoo_methods``) and any
    third-party package's methods without ``ssl_zoo`` importing them.
    """

    def __init__(self, name: str, entry_point_group: Optional[str] = None) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None

    def load_plugins(self) -> None:
        """Import every module of the entry-point group once (later calls do nothing).

        Raises:
            ImportError: naming the entry point and its package when a plugin fails to import.
        """
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # first: a plugin that reads this registry must not recurse
        seen = set()
        for ep in importlib.metadata.entry_points(group=self._group):
            if ep.name in seen:  # the same distribution reachable twice on sys.path (stacked venvs)
                continue
            seen.add(ep.name)
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001 - report which plugin broke, not a bare traceback
                dist = getattr(ep, "dist", None)
                raise ImportError(f"entry point '{ep.name} = {ep.value}' of group '{self._group}' "
                                  f"(package {getattr(dist, 'name', '?')}) failed to import: "
                                  f"{type(e).__name__}: {e}") from e
            logger.debug(f"{self._name} registry: loaded plugin {ep.name} = {ep.value}")

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(f"An object named '{name}' was already registered in the '{self._name}' registry.")
        self._obj_map[name] = obj

    def register(self, obj: Any = None, name: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default: ``obj.__name__``); usable as a decorator."""
        if obj is None:

            def deco(func_or_class: Any) -> Any:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; an unknown name raises a KeyError listing the known ones."""
        self.load_plugins()
        if name not in self._obj_map:
            close = difflib.get_close_matches(name, list(self._obj_map), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise KeyError(
                f"No object named '{name}' in the '{self._name}' registry.{hint} "
                f"Known names: {', '.join(sorted(self._obj_map)) or '(none)'}"
            )
        return self._obj_map[name]

    def __contains__(self, name: str) -> bool:
        self.load_plugins()
        return name in self._obj_map

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        self.load_plugins()
        return iter(list(self._obj_map.items()))

    def names(self) -> list:
        self.load_plugins()
        return sorted(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name}: {', '.join(self.names())})"

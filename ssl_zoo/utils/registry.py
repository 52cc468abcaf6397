"""A tiny name -> object registry (after fvcore's ``Registry``).

Every pluggable part of ssl_zoo (backbones, heads, losses, optimizers, schedules,
augmentation presets, datasets, methods) is looked up by name in one of these.
Unlike fvcore's version, an unknown name lists the known ones and suggests the
closest, so a typo in a YAML file is a one-glance fix.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterator, Optional, Tuple


class Registry:
    """Maps names to objects; registering a name twice is an error.

    Examples:
        >>> BACKBONE_REGISTRY = Registry("BACKBONE")
        >>> @BACKBONE_REGISTRY.register()
        ... def resnet18(**kwargs): ...
        >>> BACKBONE_REGISTRY.get("resnet18")
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

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
        if name not in self._obj_map:
            close = difflib.get_close_matches(name, list(self._obj_map), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise KeyError(
                f"No object named '{name}' in the '{self._name}' registry.{hint} "
                f"Known names: {', '.join(sorted(self._obj_map)) or '(none)'}"
            )
        return self._obj_map[name]

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter(self._obj_map.items())

    def names(self) -> list:
        return sorted(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name}: {', '.join(self.names())})"

"""Files that ship with ssl_zoo: the configs and the model-zoo catalog.

One source of truth each: the repository's ``configs/`` and ``model_zoo/`` folders. A wheel or
a non-editable ``pip install .`` copies them into the package as ``ssl_zoo/configs/`` and
``ssl_zoo/zoo_catalog/`` (``setup.py``'s ``package_dir`` maps those two data packages onto the
repository folders, so nothing is duplicated in git). From a checkout (editable install, or
``tools/*.py`` run in place) the repository folders are used directly.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["PACKAGE_DIR", "catalog_file", "configs_dir", "resolve_config_file"]

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../ssl_zoo
_REPO_DIR = os.path.dirname(PACKAGE_DIR)


def _first_existing(*candidates: str) -> Optional[str]:
    return next((c for c in candidates if os.path.exists(c)), None)


def configs_dir() -> str:
    """The packaged configs (``ssl_zoo/configs``), else the checkout's ``configs/``."""
    return _first_existing(os.path.join(PACKAGE_DIR, "configs"), os.path.join(_REPO_DIR, "configs")) \
        or os.path.join(PACKAGE_DIR, "configs")


def catalog_file() -> str:
    """The packaged model-zoo catalog, else the checkout's ``model_zoo/catalog.yaml``."""
    return _first_existing(os.path.join(PACKAGE_DIR, "zoo_catalog", "catalog.yaml"),
                           os.path.join(_REPO_DIR, "model_zoo", "catalog.yaml")) \
        or os.path.join(PACKAGE_DIR, "zoo_catalog", "catalog.yaml")


def resolve_config_file(path: str) -> str:
    """``path`` if it exists, else the packaged config of that name.

    ``byol/quickstart.yaml`` and ``configs/byol/quickstart.yaml`` both name the shipped
    ``configs/byol/quickstart.yaml`` when no such file exists relative to the working directory.
    A path found nowhere is returned unchanged (the loader's error names it).
    """
    if not path or os.path.exists(path) or os.path.isabs(path):
        return path
    rel = path.split("configs" + os.sep, 1)[1] if path.startswith("configs" + os.sep) else path
    packaged = os.path.join(configs_dir(), rel)
    return packaged if os.path.isfile(packaged) else path

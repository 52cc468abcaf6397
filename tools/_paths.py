"""Make ``ssl_zoo`` and the methods package importable from a plain checkout.

``pip install -e .`` installs ``methods/`` as ``ssl_zoo_methods``; without an install,
the checkout's ``methods/`` folder is loaded under that same name, so the generic
name ``methods`` is never claimed.
"""
import importlib
import importlib.util
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_methods():
    """Import ``ssl_zoo_methods`` (registering every method) and return it."""
    try:
        return importlib.import_module("ssl_zoo_methods")
    except ModuleNotFoundError:
        init = os.path.join(REPO_ROOT, "methods", "__init__.py")
        spec = importlib.util.spec_from_file_location(
            "ssl_zoo_methods", init, submodule_search_locations=[os.path.dirname(init)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["ssl_zoo_methods"] = module
        spec.loader.exec_module(module)
        return module

"""SSL methods built from ssl_zoo's parts (installed as ``ssl_zoo_methods``).

Importing this package registers every method in ``ssl_zoo.modeling.method.METHOD_REGISTRY``.
Adding a method = one module here + one import line below + configs + tests.
"""
from . import byol  # noqa: F401  (registers BYOL)

"""SSL methods built from ssl_zoo's parts (installed as ``ssl_zoo_methods``).

Importing this package registers every method in ``ssl_zoo.modeling.method.METHOD_REGISTRY``.
Adding a method = one module here + one import line below + configs + tests.
"""
from . import byol  # noqa: F401  (registers BYOL)
from . import byol_unified  # noqa: F401  (BYOL's Table 5b ablations: predictor / target / alpha-beta)
from . import simclr  # noqa: F401  (SimCLR v1 / v2)
from . import moco  # noqa: F401  (MoCo v1 / v2)
from . import simsiam  # noqa: F401
from . import barlow_twins  # noqa: F401
from . import supervised  # noqa: F401  (the supervised baseline of evaluation tables)

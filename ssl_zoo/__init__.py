"""ssl_zoo: a registry-based self-supervised learning framework for images (PyTorch).

Framework parts live here; SSL methods live in the ``ssl_zoo_methods`` package (the
``methods/`` folder), which imports ssl_zoo and is never imported by it.
"""
__version__ = "0.1.0"

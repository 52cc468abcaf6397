"""Command lines of ssl_zoo (``ssl-zoo-train``, ``ssl-zoo-benchmark``, ``ssl-zoo-model-zoo``,
``ssl-zoo-embed``; ``tools/*.py`` are thin wrappers over these modules). The top layer: it
imports ``engine`` and ``benchmark``; nothing in ``ssl_zoo`` imports it."""

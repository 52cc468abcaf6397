"""The benchmark application of ``tools/benchmark.py``: tasks (``tasks.py``), evaluation setups,
protocols (kNN, linear, semi-supervised fine-tuning, transfer, dense tasks) and their results.
The maths shared with the training monitors lives in :mod:`ssl_zoo.evaluation`."""

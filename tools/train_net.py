#!/usr/bin/env python
"""Self-supervised pretraining: a thin wrapper over ``ssl_zoo.cli.train`` (= ``ssl-zoo-train``).

Run ``python tools/train_net.py --help`` for the flags and examples.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _paths import import_methods  # noqa: E402

from ssl_zoo.cli.train import main as cli_main, parse_args, run as main, setup  # noqa: E402,F401

if __name__ == "__main__":
    import_methods()  # a checkout without `pip install -e .` has no entry points
    cli_main()

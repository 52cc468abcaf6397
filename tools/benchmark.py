#!/usr/bin/env python
"""Evaluate a backbone: a thin wrapper over ``ssl_zoo.cli.benchmark`` (= ``ssl-zoo-benchmark``).

Run ``python tools/benchmark.py --help`` for the tasks, flags and examples.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _paths import import_methods  # noqa: E402

from ssl_zoo.cli.benchmark import main as cli_main, parse_args, print_rows, run as main, setup_cfg  # noqa: E402,F401

if __name__ == "__main__":
    import_methods()  # a checkout without `pip install -e .` has no entry points
    cli_main()

#!/usr/bin/env python
"""Model-zoo command line: a thin wrapper over ``ssl_zoo.cli.model_zoo`` (= ``ssl-zoo-model-zoo``).

Run ``python tools/model_zoo.py --help`` for the commands and examples.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ssl_zoo.cli.model_zoo import main  # noqa: E402

if __name__ == "__main__":
    main()

"""The fault-injection suite (issue 13) reuses the helpers of the tests one level up
(``test_trainer.build_toy_trainer``, ``test_resume_e2e``'s tiny config and slow wrapper,
``model_zoo_fixtures.LocalServer``): make them importable."""
import os
import sys

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

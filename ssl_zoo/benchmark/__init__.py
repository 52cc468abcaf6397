"""Evaluation tasks of tools/benchmark.py, one package per task."""

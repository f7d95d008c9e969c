"""Benchmark suites for zoo: run with ``python -m zoo.bench.<suite>``."""

"""Benchmark suites for zoo: run with ``python -m benchmarks.<suite>``."""

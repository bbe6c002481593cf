"""Benchmarks: synthgate generators against SDV, side by side, in one run (see run.py)."""

"""Fidelity checks: plain functions scoring a synthetic frame against the real one.

Kept import-light (no sdmetrics at package import); import `validation.fidelity` for the report.
"""

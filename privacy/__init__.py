"""Privacy checks: plain functions over the train, holdout and synthetic frames.

Kept import-light (no torch at package import); import `privacy.distance` for distance checks.
"""

"""Tooling run from the repository root: ``python -m scripts.NAME`` (the docs' tables from results) or
``python scripts/NAME.py``."""

"""City-scale benchmark of the recompute: ``python -m bench --help`` (see README.md here)."""

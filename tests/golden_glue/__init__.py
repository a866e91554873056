"""One module per method: ``run_case(case) -> {"outputs", "grads", ...}`` (see tests/golden.py)."""

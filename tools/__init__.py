"""User scripts (python -m tools.<name>)."""

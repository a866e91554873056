"""Benchmarks: ``python benchmarks/bench_losses.py`` measures every distillation loss's cost."""

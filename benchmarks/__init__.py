"""atdata benchmark suite: ``python -m benchmarks.run`` (see BENCHMARKS.md and run.py)."""

"""Benchmarks of every stage; run each from the repository root as `python -m bench.<script>`."""

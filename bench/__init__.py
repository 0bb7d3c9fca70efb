"""Benchmarks of the serving path: the default ONNX Runtime backend against the Keras backend.

Run with `make bench` (or `python -m bench`); results go to bench/RESULTS.md.
"""

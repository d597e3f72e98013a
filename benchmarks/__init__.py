"""Benchmarks of lightgcn-sparse: ``python -m benchmarks.<name> --help`` (see README.md).

Not part of the installed package: run them from the repository root.
"""

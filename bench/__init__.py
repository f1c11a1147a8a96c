"""Benchmarks: scripts that print tables (see docs/benchmarks.md)."""

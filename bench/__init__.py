"""Benchmarks: scripts that print ratios (make bench). Not tests."""

"""Real local stand-ins for AWS, hosts and git, shared by the tests, the demo and the benchmarks.

Everything here talks to 127.0.0.1 only (see ../../shared/spec/test-rig.md §0).
"""

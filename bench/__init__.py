"""Benchmarks: ratios against raw clients and peer libraries measured in the same run."""

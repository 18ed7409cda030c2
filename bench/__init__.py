"""Benchmarks: each workload is measured next to a baseline taken in the same run. Run ``make bench``."""

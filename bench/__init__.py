"""``make bench``: ingest and processing figures, each against a baseline measured in the same run.

A benchmark, not a test: it prints numbers and ratios and never fails on a time.
"""

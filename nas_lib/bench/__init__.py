"""Benchmarks of proxies, search strategies and pruning layers against reference tables."""

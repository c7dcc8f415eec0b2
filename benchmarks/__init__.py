"""Benchmarks of the xetra job against its peers, and the synthetic Xetra data they run on."""

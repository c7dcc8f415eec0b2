"""Test support shared by tests/ and benchmarks/: job configs, source data, reading a target
back, the job as a process (with faults armed), and S3 servers on 127.0.0.1.

Imports point one way: tests/ and benchmarks/ import testkit; testkit imports xetra and
third-party libraries only, never tests/ or benchmarks/.
"""

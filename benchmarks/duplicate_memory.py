"""Peak RSS of a large day without, with one and with many exact duplicate rows.

    python -m benchmarks.duplicate_memory --mb 175

The workload lives in testkit.duplicate_memory, which the memory test uses at a small size.
"""
from testkit.duplicate_memory import main

if __name__ == "__main__":
    main()

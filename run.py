"""Entrypoint: python run.py --config PATH [--from DATE] [--to DATE] [--source URL] [--target URL]
[--dry-run | --plan | --slice | --verify]; see xetra/cli.py for the options and exit statuses."""
import gc
import os

# numpy (imported by pyarrow) starts one OpenBLAS thread per core, which spin for ~0.1 CPU s
# at start-up; the job does no linear algebra. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The imports allocate ~50k long-lived objects: collecting them over and over while they
# load, and again in every full collection of the run, is wasted work (benchmarks/README.md).
gc.disable()
from xetra.cli import main  # pylint: disable=wrong-import-position
gc.enable()
gc.freeze()

if __name__ == "__main__":
    main()

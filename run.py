"""Entrypoint: python run.py --config PATH [--from DATE] [--to DATE] [--dry-run]."""
from xetra.cli import main

if __name__ == "__main__":
    main()

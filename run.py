"""Entrypoint: python run.py --config PATH [--from DATE] [--to DATE] [--source URL] [--target URL]
[--dry-run | --plan | --slice | --verify]; see xetra/cli.py for the options and exit statuses."""
from xetra.cli import main

if __name__ == "__main__":
    main()

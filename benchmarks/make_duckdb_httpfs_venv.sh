#!/bin/sh
# A separate venv with DuckDB 1.5.5 and its httpfs extension from PyPI, for the remote-S3
# benchmark's DuckDB peer (benchmarks/run_benchmark.py --proxy-ms). DuckDB's own `INSTALL
# httpfs` downloads from extensions.duckdb.org; the PyPI package ships the binary, which the
# peer LOADs by path, offline. The extension's version must equal DuckDB's exactly.
#   sh benchmarks/make_duckdb_httpfs_venv.sh [VENV]     (default benchmarks/data/duckdb-httpfs-venv, gitignored)
set -eu
VENV=${1:-$(dirname "$0")/data/duckdb-httpfs-venv}
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "duckdb==1.5.5" "duckdb-extension-httpfs==1.5.5" "pyarrow"
"$VENV/bin/python" - <<'PY'
import duckdb, pathlib, duckdb_extension_httpfs as ext
print(duckdb.__version__, [str(p) for p in pathlib.Path(ext.__file__).parent.rglob("*.duckdb_extension")])
PY

"""A run's start-up costs (issue 16): what a weekly run imports, and the Arrow values built
from bytes instead of from Python objects (which would import pandas)."""
import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from xetra import arrow_values as av

# Imported by a run that needs none of them: pandas (~0.2 s, through any Python -> Arrow
# conversion), pyarrow.dataset and pyarrow.acero (through Table.group_by / join), and the
# backfill planner (only --plan and --verify).
NOT_NEEDED = ("pandas", "pyarrow.dataset", "pyarrow.acero", "xetra.backfill", "boto3")

PROBE = """
import json, sys
from xetra.cli import run
status = run(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(name for name in %r
                                                      if name in sys.modules)}))
""" % (NOT_NEEDED,)


def probe(repo_root, *argv):
    """Run the CLI in a fresh interpreter; its exit status and the unneeded modules loaded."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=repo_root, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_run_imports_no_pandas_dataset_acero_backfill_or_boto3(repo_root, tmp_path):
    found = probe(repo_root, "--config", "configs/xetra_sample.yml", "--from", "2017-06-27",
                  "--to", "2017-07-04", "--target", str(tmp_path / "out"))
    assert found == {"status": 0, "modules": []}
    # The run did write its objects: 6 trading days, one meta file.
    assert len(list((tmp_path / "out" / "report1").glob("*.parquet"))) == 6
    assert (tmp_path / "out" / "meta" / "report1" / "xetra_report1_meta_file.csv").exists()


def test_importing_the_cli_imports_none_of_them(repo_root):
    code = f"import sys, xetra.cli; print(','.join(n for n in {NOT_NEEDED!r} if n in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, check=True,
                          capture_output=True, text=True)
    assert done.stdout.strip() == ""


def test_plan_still_works_with_its_lazy_import(repo_root, tmp_path):
    found = probe(repo_root, "--config", "configs/xetra_sample.yml", "--from", "2017-06-27",
                  "--to", "2017-06-28", "--target", str(tmp_path / "out"), "--plan")
    assert found["status"] == 0
    assert "xetra.backfill" in found["modules"]


ENTRYPOINT_STATE = """
import gc, json, os, runpy, sys
runpy.run_path("run.py", run_name="imported")
print(json.dumps({"gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                  "numpy": "numpy" in sys.modules}))
"""


@pytest.mark.parametrize("user_value, expected", [(None, "1"), ("2", "2")],
                         ids=["default", "user-set"])
def test_the_entrypoint_leaves_the_collector_on_and_blas_single_threaded(repo_root, user_value,
                                                                         expected):
    """run.py imports the job with the collector off, then turns it back on with the imported
    objects frozen; OpenBLAS gets one thread unless the user chose a number."""
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    if user_value is not None:
        env["OPENBLAS_NUM_THREADS"] = user_value
    done = subprocess.run([sys.executable, "-c", ENTRYPOINT_STATE], cwd=repo_root, env=env,
                          check=True, capture_output=True, text=True)
    state = json.loads(done.stdout)
    assert state["gc_enabled"] is True and state["numpy"] is True
    assert state["frozen"] > 10_000  # the modules' objects, pyarrow's and numpy's among them
    assert state["blas"] == expected


def test_scalars_hold_their_values():
    assert av.FALSE.as_py() is False
    assert av.int64(-5).as_py() == -5
    assert av.int64(2 ** 63 - 1).as_py() == 9223372036854775807
    assert av.float64(0.1).as_py() == 0.1
    assert av.float64(-0.0).as_py() == 0.0
    assert av.null(av.int64(0).type).as_py() is None
    assert av.string("2021-03-01").as_py() == "2021-03-01"
    assert av.string("").as_py() == ""


def test_strings_and_dates():
    assert av.strings(["EUR", "", "Größe"]).to_pylist() == ["EUR", "", "Größe"]
    assert av.strings([]).to_pylist() == []
    assert av.same_date(dt.date(2021, 3, 1), 3).to_pylist() == [dt.date(2021, 3, 1)] * 3
    assert av.same_date(dt.date(1969, 12, 31), 1).to_pylist() == [dt.date(1969, 12, 31)]
    assert av.same_date(dt.date(2021, 3, 1), 0).to_pylist() == []


def test_numpy_round_trip_respects_slices_and_chunks():
    np = pytest.importorskip("numpy")
    values = av.from_numpy(np.array([1.5, 2.5, -3.0, 4.0]), av.float64(0).type)
    assert values.to_pylist() == [1.5, 2.5, -3.0, 4.0]
    assert av.to_numpy(values.slice(1, 2), np.float64).tolist() == [2.5, -3.0]
    chunked = av.combined(values).slice(2)
    assert av.to_numpy(chunked, np.float64).tolist() == [-3.0, 4.0]
    assert av.to_numpy(values.slice(4), np.float64).tolist() == []


def test_combined_of_no_chunks_and_of_several():
    np = pytest.importorskip("numpy")
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    empty = av.combined(pa.chunked_array([], pa.string()))
    assert empty.type == pa.string() and len(empty) == 0
    two = pa.chunked_array([av.from_numpy(np.array([1, 2]), pa.int64()),
                            av.from_numpy(np.array([7]), pa.int64())])
    assert av.to_numpy(two, np.int64).tolist() == [1, 2, 7]

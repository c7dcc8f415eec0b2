"""The parallel backfill in one process on local folders: plan, slice locks, orphans, verify."""
from __future__ import annotations

import csv

import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from testkit.backfill_data import SMALL_FIRST as FIRST
from testkit.backfill_data import backfill_config, make_small_source
from testkit.reference import reference_report
from testkit.targets import LOCK_KEY as LOCK
from testkit.targets import META_KEY as META
from testkit.targets import local_objects, meta_records, report_table
from xetra import cli
from xetra.backfill import DateSlice, plan_json, plan_slices
from xetra.config import MetaSettings
from xetra.meta import MetaEntry, MetaProcess
from xetra.storage import LocalStorage

D = dt.date


def days(*numbers: int) -> list[dt.date]:
    """Dates of January 2018."""
    return [D(2018, 1, n) for n in numbers]


def run(*args: str) -> tuple[int, str, str]:
    """cli.run in this process: (exit status, stdout, stderr); logs go to the real stdout."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.run(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def job(capsys):
    """cli.run with its log lines (configured to go to sys.stdout) added to its stdout."""
    def call(*args: str) -> tuple[int, str, str]:
        status, out, err = run(*args)
        return status, out + capsys.readouterr().out, err
    return call


def lock_content(expires: dt.datetime, owner: str = "other-host:42:abcd") -> bytes:
    """A lock object as another run writes it."""
    return json.dumps({"owner": owner, "acquired_at": "2018-01-01T00:00:00+00:00",
                       "expires_at": expires.isoformat(timespec="seconds")}).encode()


LIVE = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
EXPIRED = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The small three-week source, 2018-01-01..2018-01-21."""
    folder = tmp_path_factory.mktemp("source")
    assert make_small_source(folder) == D(2018, 1, 21)
    return folder


@pytest.fixture
def config(source, tmp_path) -> tuple[Path, Path]:
    """(config file, target folder) of a fresh target."""
    target = tmp_path / "target"
    return backfill_config(tmp_path / "xetra.yml", str(source), str(target)), target


@pytest.mark.parametrize("pending, slices, expected", [
    (days(*range(1, 11)), 3, [(1, 4), (5, 7), (8, 10)]),
    (days(1, 2, 3, 7, 8, 9), 2, [(1, 3), (7, 9)]),
    (days(1, 2, 3, 7, 8, 9), 4, [(1, 2), (3, 7), (8, 8), (9, 9)]),
    (days(9, 1, 5), 5, [(1, 1), (5, 5), (9, 9)]),
    ([], 4, []),
])
def test_plan_slices_are_contiguous_and_balanced(pending, slices, expected):
    """Slices hold as many pending dates as each other or one more, in date order."""
    assert plan_slices(pending, slices) == [DateSlice(D(2018, 1, a), D(2018, 1, b))
                                            for a, b in expected]


def test_plan_slices_rejects_zero_slices():
    """Zero slices is a programming error, not an empty plan."""
    with pytest.raises(ValueError, match="at least 1"):
        plan_slices(days(1), 0)


def test_plan_json_is_argo_withparam_items():
    """The items carry `from` and `to`, the names the workflow template reads."""
    assert plan_json([DateSlice(D(2018, 1, 1), D(2018, 1, 4))]) == \
        '[{"from": "2018-01-01", "to": "2018-01-04"}]'


def test_plan_lists_only_dates_the_meta_file_lacks(job, config, tmp_path):
    """After a slice did 3..5 January, the plan splits the 11 other dates 4+4+3."""
    path, target = config
    assert job("--config", str(path), "--slice", "--from", "2018-01-03",
               "--to", "2018-01-05")[0] == 0
    plan_file = tmp_path / "plan.json"
    status, out, _ = job("--config", str(path), "--plan", "--from", "2018-01-01",
                         "--to", "2018-01-14", "--slices", "3", "--plan-file", str(plan_file))
    expected = [{"from": "2018-01-01", "to": "2018-01-07"},
                {"from": "2018-01-08", "to": "2018-01-11"},
                {"from": "2018-01-12", "to": "2018-01-14"}]
    assert status == 0
    assert json.loads(out.splitlines()[0]) == expected
    assert json.loads(plan_file.read_text(encoding="utf-8")) == expected
    assert [row[0] for row in meta_records((target / META).read_bytes())] == \
        ["2018-01-03", "2018-01-04", "2018-01-05"]


def test_plan_of_a_finished_range_is_empty_and_writes_nothing(job, config):
    """Nothing pending: an empty list; a plan of a fresh target creates no folder."""
    path, target = config
    status, out, _ = job("--config", str(path), "--plan", "--to", "2018-01-05")
    assert status == 0
    assert json.loads(out.splitlines()[0]) == [
        {"from": "2018-01-01", "to": "2018-01-02"}, {"from": "2018-01-03", "to": "2018-01-03"},
        {"from": "2018-01-04", "to": "2018-01-04"}, {"from": "2018-01-05", "to": "2018-01-05"}]
    assert not target.exists()
    assert job("--config", str(path), "--to", "2018-01-05")[0] == 0
    status, out, _ = job("--config", str(path), "--plan", "--to", "2018-01-05")
    assert (status, out.splitlines()[0]) == (0, "[]")


def test_unwritable_plan_file_fails_with_one_line(job, config, tmp_path):
    """The plan cannot be handed on: exit 1 naming the file, not a traceback."""
    path, _ = config
    missing = tmp_path / "no-such-folder" / "plan.json"
    status, _, err = job("--config", str(path), "--plan", "--to", "2018-01-05",
                         "--plan-file", str(missing))
    assert (status, err) == (1, f"xetra: run failed: cannot write --plan-file {missing}: "
                                f"No such file or directory\n")


@pytest.mark.parametrize("args, message", [
    (["--plan", "--slices", "0"], "--slices: 0 is not a positive number of slices"),
    (["--slice", "--to", "2018-01-05"], "--slice: give the slice's range with --from and --to"),
])
def test_bad_backfill_arguments_are_config_errors(job, config, args, message):
    """Exit 2 with one line naming the option, before any I/O."""
    path, target = config
    status, _, err = job("--config", str(path), *args)
    assert status == 2
    assert err == f"xetra: configuration error: {message}\n"
    assert not target.exists()


def test_weekly_run_stops_while_a_slice_is_live(job, config):
    """A live slice lock anywhere stops the weekly run, which writes nothing; an expired one
    (a killed slice's) does not."""
    path, target = config
    store = LocalStorage(target, create=True)
    store.check_access()
    store.put_bytes(f"{LOCK}.slices/2018-01-08_2018-01-14", lock_content(LIVE))
    status, _, err = job("--config", str(path), "--to", "2018-01-05")
    assert status == 3
    assert "a backfill slice 2018-01-08..2018-01-14 (other-host:42:abcd" in err
    assert not (target / META).exists() and not (target / LOCK).exists()
    store.put_bytes(f"{LOCK}.slices/2018-01-08_2018-01-14", lock_content(EXPIRED))
    assert job("--config", str(path), "--to", "2018-01-05")[0] == 0
    assert len(meta_records((target / META).read_bytes())) == 5


def test_slice_stops_while_the_weekly_run_is_live(job, config):
    """The global lock stops a slice, which removes its own lock and writes nothing."""
    path, target = config
    store = LocalStorage(target, create=True)
    store.check_access()
    store.put_bytes(LOCK, lock_content(LIVE))
    status, _, err = job("--config", str(path), "--slice", "--from", "2018-01-01",
                         "--to", "2018-01-05")
    assert status == 3
    assert f"the run holding {target / LOCK} (other-host:42:abcd until" in err
    assert "slice 2018-01-01..2018-01-05 stops without writing" in err
    assert store.list_objects("meta/") == store.list_objects(LOCK)
    assert not (target / "report1").exists()


def test_slices_that_overlap_exclude_each_other_disjoint_ones_do_not(job, config):
    """A live slice 4..10 stops slice 1..5 but not slice 11..14; odd names are ignored."""
    path, target = config
    store = LocalStorage(target, create=True)
    store.check_access()
    store.put_bytes(f"{LOCK}.slices/2018-01-04_2018-01-10", lock_content(LIVE))
    store.put_bytes(f"{LOCK}.slices/notes.txt", b"not a lock")
    status, _, err = job("--config", str(path), "--slice", "--from", "2018-01-01",
                         "--to", "2018-01-05")
    assert status == 3
    assert "an overlapping backfill slice 2018-01-04..2018-01-10" in err
    assert job("--config", str(path), "--slice", "--from", "2018-01-11",
               "--to", "2018-01-14")[0] == 0
    assert [row[0] for row in meta_records((target / META).read_bytes())] == \
        ["2018-01-11", "2018-01-12", "2018-01-13", "2018-01-14"]
    assert not (target / f"{LOCK}.slices/2018-01-11_2018-01-14").exists()


def test_slice_removes_orphans_of_its_own_dates_only(job, config):
    """An orphan on a weekend of the slice goes; one of a date outside it stays."""
    path, target = config
    store = LocalStorage(target, create=True)
    store.check_access()
    inside, outside = "report1/xetra_report1_2018-01-06.parquet", \
        "report1/xetra_report1_2018-01-20.parquet"
    store.put_bytes(inside, b"left by a killed run")
    store.put_bytes(outside, b"left by another slice")
    status, out, _ = job("--config", str(path), "--slice", "--from", "2018-01-01",
                         "--to", "2018-01-07")
    assert status == 0
    # 7 dates in at most 7 updates (dates computed during a commit share the next one)
    updates = int(out.split("meta file updates=", 1)[1].split()[0])
    assert 1 <= updates <= 7 and "conflicts_412=0" in out
    assert not (target / inside).exists()
    assert (target / outside).read_bytes() == b"left by another slice"


def test_meta_record_retries_after_a_concurrent_update(tmp_path):
    """Another writer updates the meta file between our read and our conditional write: the
    write fails once (counted), is retried, and both dates are kept."""

    class RacedStore(LocalStorage):
        """Lets another writer in just before our first conditional write."""

        raced = False

        def put_bytes(self, key, data, **condition):
            if not self.raced:
                self.raced = True
                MetaProcess(LocalStorage(self.root), MetaSettings()).record(
                    [MetaEntry(D(2018, 1, 2), "2018-01-03T00:00:00+00:00", "", "0")])
            return super().put_bytes(key, data, **condition)

    store = RacedStore(tmp_path, create=True)
    meta = MetaProcess(store, MetaSettings())
    meta.record([MetaEntry(D(2018, 1, 1), "2018-01-02T00:00:00+00:00", "k", "5")])
    assert (meta.updates, meta.conflicts) == (1, 1)
    assert meta_records((tmp_path / META).read_bytes()) == \
        [("2018-01-01", "k", "5"), ("2018-01-02", "", "0")]


@pytest.fixture(scope="module")
def finished(source, tmp_path_factory) -> Path:
    """A target after one sequential run over all three weeks."""
    folder = tmp_path_factory.mktemp("finished")
    target = folder / "target"
    path = backfill_config(folder / "xetra.yml", str(source), str(target))
    assert run("--config", str(path), "--to", "2018-01-21")[0] == 0
    return target


@pytest.fixture
def copy_of_finished(finished, source, tmp_path) -> tuple[Path, Path]:
    """(config, target) of a copy of the finished target, to damage."""
    target = tmp_path / "target"
    shutil.copytree(finished, target)
    return backfill_config(tmp_path / "xetra.yml", str(source), str(target)), target


def test_verify_passes_a_complete_range_with_counts_from_the_reference(job, copy_of_finished,
                                                                        source):
    """21 dates listed; 15 trading days; report rows as many as the pandas reference has."""
    path, _ = copy_of_finished
    expected_rows = len(reference_report(source, FIRST, D(2018, 1, 21)))
    status, out, err = job("--config", str(path), "--verify", "--to", "2018-01-21")
    assert (status, err) == (0, "")
    assert out.splitlines()[-1].endswith(
        f"INFO xetra: verify ok: 2018-01-01..2018-01-21: 21 date(s) in the meta file, 15 report "
        f"object(s), {expected_rows} report rows")


def test_verify_tells_dates_still_waiting_for_source_data(job, copy_of_finished):
    """Dates without any source object are not a failure: their data may come later."""
    path, _ = copy_of_finished
    status, out, _ = job("--config", str(path), "--verify", "--to", "2018-01-23")
    assert status == 0
    assert "waiting for source data: 2018-01-22..2018-01-23 (2 dates)" in out


def _table_bytes(rows: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"isin": ["X"] * rows}), sink)
    return sink.getvalue()


def _drop_meta_line(target: Path, day: str) -> None:
    lines = (target / META).read_text(encoding="utf-8").splitlines(keepends=True)
    (target / META).write_text("".join(line for line in lines if not line.startswith(day)),
                               encoding="utf-8")


def _edit_meta(target: Path, day: str, report_rows: str) -> None:
    rows = list(csv.reader(io.StringIO((target / META).read_text(encoding="utf-8"))))
    column = rows[0].index("report_rows")
    for row in rows[1:]:
        if row[0] == day:
            row[column] = report_rows
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (target / META).write_text(out.getvalue(), encoding="utf-8")


def _duplicate_meta_column(target: Path) -> None:
    lines = (target / META).read_text(encoding="utf-8").splitlines()
    (target / META).write_text("".join(f"{line},{line.split(',')[0]}\n" for line in lines),
                               encoding="utf-8")


REPORT = "report1/xetra_report1_{}.parquet"


@pytest.mark.parametrize("damage, problems", [
    (lambda t: (t / REPORT.format("2018-01-03")).unlink(),
     ["date 2018-01-03: report object {t}/report1/xetra_report1_2018-01-03.parquet is "
      "missing (meta file says {rows[2018-01-03]} rows)"]),
    (lambda t: (t / REPORT.format("2018-01-04")).write_bytes(_table_bytes(2)),
     ["date 2018-01-04: {t}/report1/xetra_report1_2018-01-04.parquet has 2 rows, the meta "
      "file says {rows[2018-01-04]}"]),
    (lambda t: _drop_meta_line(t, "2018-01-19"),  # its report object: a warning only
     ["date 2018-01-19 has source objects but is not in the meta file"]),
    (lambda t: shutil.copy(t / REPORT.format("2018-01-05"), t / REPORT.format("2018-01-06")),
     ["date 2018-01-06: meta file says no trades but "
      "{t}/report1/xetra_report1_2018-01-06.parquet exists"]),
    (lambda t: _edit_meta(t, "2018-01-08", "many"),
     ["date 2018-01-08: meta file report_rows 'many' is not a number"]),
    (lambda t: (t / REPORT.format("2018-01-09")).write_bytes(b"PAR1 not really"),
     ["date 2018-01-09: {t}/report1/xetra_report1_2018-01-09.parquet is not a readable "
      "parquet object ("]),
    (_duplicate_meta_column,
     ["meta file {t}/" + META + ": header column 'source_date' appears twice"]),
])
def test_verify_fails_with_one_line_naming_each_problem(job, copy_of_finished, damage, problems):
    """Each kind of damage gives exit 1, its problem logged, and one line on stderr."""
    path, target = copy_of_finished
    rows = {row[0]: row[2] for row in meta_records((target / META).read_bytes())}
    damage(target)
    status, out, err = job("--config", str(path), "--verify", "--to", "2018-01-21")
    assert status == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"xetra: verify failed: {len(problems)} problem(s): ")
    for problem in problems:
        assert f"ERROR xetra: verify: {problem.format(t=target, rows=rows)}" in out


def test_verify_does_not_count_rows_of_dates_written_by_older_tools(job, copy_of_finished):
    """A meta row without report_rows (two-column file of an older tool) cannot be checked."""
    path, target = copy_of_finished
    rows = meta_records((target / META).read_bytes())
    _edit_meta(target, "2018-01-02", "")
    status, out, _ = job("--config", str(path), "--verify", "--to", "2018-01-21")
    total = sum(int(row[2]) for row in rows if row[0] != "2018-01-02")
    assert status == 0
    assert f"21 date(s) in the meta file, 14 report object(s), {total} report rows" in out


def test_slices_give_the_rows_of_one_sequential_run(job, finished, source, tmp_path):
    """Three slices run one after the other in any order equal one run over the range."""
    target = tmp_path / "target"
    path = backfill_config(tmp_path / "xetra.yml", str(source), str(target))
    for first, last in [("2018-01-15", "2018-01-21"), ("2018-01-01", "2018-01-07"),
                        ("2018-01-08", "2018-01-14")]:
        assert job("--config", str(path), "--slice", "--from", first, "--to", last)[0] == 0
    assert meta_records((target / META).read_bytes()) == \
        meta_records((finished / META).read_bytes())
    assert report_table(local_objects(target, "report1/")).equals(
        report_table(local_objects(finished, "report1/")))


def test_workflow_template_calls_the_cli_as_it_parses(repo_root):
    """The fan-out template: plan writes the file its output reads, slices take the plan's
    item keys, every container's args parse with run.py's parser, and image, config and
    credentials are the deployment's names. (Schema validation: the deploy/ test.)"""
    document = yaml.safe_load((repo_root / "deploy" /
                               "backfill-parallel-workflowtemplate.yaml").read_text("utf-8"))
    spec = document["spec"]
    templates = {template["name"]: template for template in spec["templates"]}
    steps = [step for group in templates[spec["entrypoint"]]["steps"] for step in group]
    assert [step["template"] for step in steps] == ["plan", "slice", "verify"]
    assert steps[1]["withParam"] == "{{steps.plan.outputs.parameters.slices}}"
    item_keys = {p["value"] for p in steps[1]["arguments"]["parameters"]}
    assert item_keys == {"{{item.from}}", "{{item.to}}"} and \
        set(json.loads(plan_json([DateSlice(FIRST, FIRST)]))[0]) == {"from", "to"}
    assert templates[spec["entrypoint"]]["parallelism"] >= 1
    assert spec["volumes"] == [{"name": "config", "configMap": {"name": "xetra-config"}}]
    values = {"{{workflow.parameters.from}}": "2018-01-01", "{{inputs.parameters.from}}":
              "2018-01-01", "{{workflow.parameters.to}}": "2018-01-21",
              "{{inputs.parameters.to}}": "2018-01-07", "{{workflow.parameters.slices}}": "16"}
    modes = []
    for name in ("plan", "slice", "verify"):
        container = templates[name]["container"]
        assert container["image"] == "localhost/xetra:local"  # scripts/build_image.sh
        assert container["envFrom"] == [{"secretRef": {"name": "xetra-aws-credentials"}}]
        assert container["volumeMounts"][0]["mountPath"] == "/config"
        args = cli.build_parser().parse_args([values.get(arg, arg) for arg in container["args"]])
        assert args.config == "/config/xetra.yml"
        modes.append([mode for mode in ("plan", "slice", "verify") if getattr(args, mode)])
        if name == "plan":
            output = templates[name]["outputs"]["parameters"][0]
            assert (output["name"], output["valueFrom"]["path"]) == ("slices", args.plan_file)
    assert modes == [["plan"], ["slice"], ["verify"]]

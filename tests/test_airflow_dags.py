"""The Airflow DAGs of deploy/airflow/dags, checked and run by Airflow itself.

Marked `airflow` (deselected by default): .ci/steps/30-airflow.sh runs this file in a venv of
its own with the versions pinned in deploy/airflow/requirements-test.txt (Airflow's pins
conflict with the project's), with XETRA_PROJECT_PYTHON naming the project's interpreter,
which the local runner uses to run run.py. The DAG files are parsed by Airflow's DagBag twice:
as shipped (KubernetesPodOperator; compared with the Argo manifests) and with the local runner
(XETRA_AIRFLOW_RUNNER=local, the same factory), which `dag.test()` then executes end to end on
the bundled sample with sqlite metadata in a temporary AIRFLOW_HOME.
"""
# Airflow is only in the CI step's venv, not in the project's (pylint runs there).
# pylint: disable=import-error,import-outside-toplevel
# `airflow_env` is asked for its side effect (AIRFLOW_HOME set before Airflow is imported).
# pylint: disable=unused-argument
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.paths import REPO

DAGS = REPO / "deploy" / "airflow" / "dags"
META = Path("meta") / "report1" / "xetra_report1_meta_file.csv"
SAMPLE_DATES = ["2017-06-27", "2017-06-28", "2017-06-29", "2017-06-30", "2017-07-01",
                "2017-07-02", "2017-07-03", "2017-07-04"]
BERLIN = dt.timezone(dt.timedelta(hours=2))  # CEST, in force in July 2017

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """A private AIRFLOW_HOME with migrated sqlite metadata; set before Airflow is imported."""
    home = tmp_path_factory.mktemp("airflow-home")
    python = os.environ.get("XETRA_PROJECT_PYTHON")
    assert python, "XETRA_PROJECT_PYTHON: the project's interpreter (pipenv --py) is needed"
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
           "XETRA_LOCAL_PYTHON": python, "XETRA_LOCAL_RUN_PY": str(REPO / "run.py")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        migrate = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db",
                                  "migrate"], capture_output=True, text=True, timeout=600,
                                 check=False)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        yield env


def dag_bag(runner: str, monkeypatch) -> Any:
    """The DAG folder parsed by Airflow (as its dag processor does: bundle on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag
    monkeypatch.setenv("XETRA_AIRFLOW_RUNNER", runner)
    for module in ("xetra_tasks", "xetra_dags"):
        sys.modules.pop(module, None)
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["xetra_report1_backfill", "xetra_report1_weekly"]
    return bag


def argo(name: str) -> dict[str, Any]:
    """A manifest of deploy/ by file name."""
    return yaml.safe_load((REPO / "deploy" / name).read_text(encoding="utf-8"))


# --- parsed as shipped ---------------------------------------------------------------------------

def test_weekly_dag_schedule_and_retries(airflow_env, monkeypatch):
    """Saturday 06:00 in Berlin, as the CronWorkflow; one task with back-off past the lock."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction
    weekly = dag_bag("kubernetes", monkeypatch).dags["xetra_report1_weekly"]
    cron = argo("cronworkflow.yaml")["spec"]
    timetable = coerce_to_core_timetable(weekly.timetable)  # what the scheduler uses
    assert timetable.serialize()["expression"] == cron["schedules"][0]
    assert timetable.serialize()["timezone"] == cron["timezone"]
    # The scheduler's own next runs across the switch to summer time (2026-03-29): Saturday
    # 06:00 in Berlin is 05:00 UTC before it and 04:00 UTC after it.
    restriction = TimeRestriction(earliest=dt.datetime(2026, 3, 23, tzinfo=dt.timezone.utc),
                                  latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None,
                                       restriction=restriction)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval,
                                        restriction=restriction)
    assert [first.run_after.isoformat(), second.run_after.isoformat()] == [
        "2026-03-28T05:00:00+00:00", "2026-04-04T04:00:00+00:00"]
    assert (weekly.catchup, weekly.max_active_runs) == (False, 1)
    [task] = weekly.tasks
    assert (task.retries, task.retry_delay, task.retry_exponential_backoff) == \
        (4, dt.timedelta(minutes=2), 2.0)
    waits = [120 * 2 ** n for n in range(task.retries)]
    assert sum(waits) > 900  # the ConfigMap's lock_ttl_seconds
    assert task.execution_timeout == dt.timedelta(
        seconds=cron["workflowSpec"]["templates"][0]["activeDeadlineSeconds"])
    max_seconds = float(task.arguments[task.arguments.index("--max-seconds") + 1])
    assert max_seconds < task.execution_timeout.total_seconds()


def test_weekly_run_after_gives_fridays_date(airflow_env, monkeypatch):
    """The --to template: the run's time in Berlin minus a day (rendered by Jinja here)."""
    import jinja2.sandbox
    from airflow.sdk import macros
    weekly = dag_bag("kubernetes", monkeypatch).dags["xetra_report1_weekly"]
    [task] = weekly.tasks
    template = jinja2.sandbox.SandboxedEnvironment().from_string(
        task.arguments[task.arguments.index("--to") + 1])

    class Run:  # pylint: disable=too-few-public-methods
        """The one attribute of the dag run the template reads."""

        # Saturday 2026-03-28 00:30 in Berlin (CET, UTC+1): still Friday in UTC.
        run_after = dt.datetime(2026, 3, 27, 23, 30, tzinfo=dt.timezone.utc)
    rendered = template.render(dag_run=Run, macros=macros)
    assert rendered == "2026-03-27"


def test_backfill_dag_maps_slices_between_plan_and_verify(airflow_env, monkeypatch):
    backfill = dag_bag("kubernetes", monkeypatch).dags["xetra_report1_backfill"]
    assert type(backfill.timetable).__name__ == "NullTimetable"  # by hand only
    tasks = {task.task_id: task for task in backfill.tasks}
    assert sorted(tasks) == ["plan", "slice", "verify"]
    assert tasks["plan"].downstream_task_ids == {"slice"}
    assert tasks["slice"].downstream_task_ids == {"verify"}
    assert type(tasks["slice"]).__name__ == "MappedOperator"
    assert tasks["slice"].max_active_tis_per_dag == 4  # Argo: parallelism 4
    assert tasks["plan"].do_xcom_push is True
    assert sorted(backfill.params.keys()) == ["from", "slices", "to"]


def kpo_spec(task: Any) -> dict[str, Any]:
    """The pod settings of a (possibly mapped) pod task, as plain data."""
    from kubernetes.client import ApiClient
    kwargs = task.partial_kwargs if hasattr(task, "partial_kwargs") else vars(task)
    api = ApiClient()
    return {key: api.sanitize_for_serialization(kwargs[key]) for key in (
        "image", "namespace", "service_account_name", "env_from", "volumes", "volume_mounts",
        "container_resources", "security_context", "container_security_context")}


def test_pods_match_the_argo_manifests(airflow_env, monkeypatch):
    """Image, config mount, Secret, account, resources and security as the Argo manifests."""
    bag = dag_bag("kubernetes", monkeypatch)
    cron = argo("cronworkflow.yaml")["spec"]["workflowSpec"]
    parallel = argo("backfill-parallel-workflowtemplate.yaml")["spec"]
    argo_templates = {t["name"]: t for t in parallel["templates"]}
    pairs = [(bag.dags["xetra_report1_weekly"].get_task("report1"), cron["templates"][0], cron)]
    for name in ("plan", "slice", "verify"):
        pairs.append((bag.dags["xetra_report1_backfill"].get_task(name), argo_templates[name],
                      parallel))
    for task, template, workflow in pairs:
        spec, container = kpo_spec(task), template["container"]
        label = task.task_id
        assert type(task).__name__ in ("XetraPodOperator", "MappedOperator"), label
        assert spec["image"] == container["image"], label
        assert spec["service_account_name"] == workflow["serviceAccountName"], label
        resources = {kind: {k: str(v) for k, v in values.items()}
                     for kind, values in container["resources"].items()}
        assert spec["container_resources"] == resources, label
        assert spec["env_from"] == [{"secretRef": {"name": "xetra-aws-credentials",
                                                   "optional": True}}], label
        assert {"name": "config", "mountPath": "/config", "readOnly": True} in \
            spec["volume_mounts"], label
        assert {"name": "config", "configMap": {"name": "xetra-config"}} in spec["volumes"]
        # At least the workflow's pod security context; the weekly one exactly.
        assert workflow["securityContext"].items() <= spec["security_context"].items(), label
    weekly = kpo_spec(pairs[0][0])
    assert weekly["security_context"] == cron["securityContext"]
    assert weekly["container_security_context"] == cron["templates"][0]["container"][
        "securityContext"]
    assert {"name": "tmp", "mountPath": "/tmp"} in weekly["volume_mounts"]


@pytest.mark.parametrize("status,retried", [(1, True), (2, False), (3, True), (4, False)])
def test_pod_exit_status_decides_the_retry(airflow_env, monkeypatch, status, retried):
    """The provider's cleanup raises for a failed pod; exit 2 and 4 become final."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from kubernetes.client import models as k8s
    task = dag_bag("kubernetes", monkeypatch).dags["xetra_report1_weekly"].get_task("report1")
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="xetra-report1-x"), status=k8s.V1PodStatus(
        phase="Failed", container_statuses=[k8s.V1ContainerStatus(
            name="base", image="i", image_id="i", ready=False, restart_count=0,
            state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
                exit_code=status)))]))

    def provider_cleanup(*_args, **_kwargs):
        raise AirflowException("Pod xetra-report1-x returned a failure.")
    monkeypatch.setattr(KubernetesPodOperator, "cleanup", provider_cleanup)
    with pytest.raises(AirflowException) as raised:
        task.cleanup(pod, pod)
    assert isinstance(raised.value, AirflowFailException) is not retried
    if not retried:
        assert f"job exit status {status}" in str(raised.value)


# --- run end to end with the local runner --------------------------------------------------------

@pytest.fixture
def local_runner(airflow_env, monkeypatch, tmp_path) -> tuple[Any, Path]:
    """The DAGs built with the local runner, writing into a fresh target folder."""
    target = tmp_path / "out"
    raw = yaml.safe_load((REPO / "configs" / "xetra_sample.yml").read_text(encoding="utf-8"))
    raw["source"]["url"] = str(REPO / "data" / "sample")
    raw["target"]["url"] = str(target)
    config = tmp_path / "xetra.yml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("XETRA_LOCAL_CONFIG", str(config))
    monkeypatch.setenv("XETRA_AIRFLOW_RUNNER", "local")  # also for dag.test's own parse
    return dag_bag("local", monkeypatch), target


def states(run: Any) -> dict[str, list[str]]:
    """Task id -> states of its instances (one per mapped index)."""
    found: dict[str, list[str]] = {}
    for instance in sorted(run.get_task_instances(), key=lambda i: (i.task_id, i.map_index)):
        found.setdefault(instance.task_id, []).append(str(instance.state))
    return found


def meta_dates(target: Path) -> list[str]:
    """The meta file's dates, in file order."""
    return [line.split(",")[0] for line in
            (target / META).read_text(encoding="utf-8").splitlines()[1:]]


def snapshot(target: Path) -> dict[str, tuple[int, int]]:
    """Every file of the target with its size and modification time (ns)."""
    return {str(p.relative_to(target)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(target.rglob("*")) if p.is_file()}


@pytest.mark.timeout(300)  # a failed attempt would wait for its retry: fail instead
def test_weekly_dag_runs_the_sample_then_has_nothing_to_do(local_runner):
    bag, target = local_runner
    weekly = bag.dags["xetra_report1_weekly"]
    # Run on Wednesday 2017-07-05 06:00 in Berlin: "yesterday" is the sample's last day.
    wednesday = dt.datetime(2017, 7, 5, 6, 0, tzinfo=BERLIN)

    run = weekly.test(run_after=wednesday, logical_date=wednesday)

    assert str(run.state) == "success", states(run)
    assert states(run) == {"report1": ["success"]}
    assert meta_dates(target) == SAMPLE_DATES
    assert sorted(p.name for p in (target / "report1").iterdir()) == [
        f"xetra_report1_{day}.parquet" for day in SAMPLE_DATES
        if day not in ("2017-07-01", "2017-07-02")]  # weekend: no trades, no object
    before = snapshot(target)

    again = weekly.test(run_after=wednesday + dt.timedelta(minutes=1),
                        logical_date=wednesday + dt.timedelta(minutes=1))

    assert str(again.state) == "success"
    assert snapshot(target) == before  # nothing rewritten


@pytest.mark.timeout(400)
def test_backfill_dag_fans_out_verifies_and_a_second_run_does_nothing(local_runner):
    bag, target = local_runner
    backfill = bag.dags["xetra_report1_backfill"]
    conf = {"from": "2017-06-27", "to": "2017-07-04", "slices": 3}
    when = dt.datetime(2017, 7, 10, 12, 0, tzinfo=dt.timezone.utc)

    run = backfill.test(run_after=when, logical_date=when, run_conf=conf)

    assert str(run.state) == "success", states(run)
    # 8 pending dates in at most 3 slices: 3 mapped instances, then verify.
    assert states(run) == {"plan": ["success"], "slice": ["success"] * 3,
                           "verify": ["success"]}
    assert sorted(meta_dates(target)) == SAMPLE_DATES
    before = snapshot(target)

    later = when + dt.timedelta(hours=1)
    again = backfill.test(run_after=later, logical_date=later, run_conf=conf)

    assert str(again.state) == "success", states(again)
    # The plan is empty: no slice instance runs; verify still checks the range.
    assert states(again)["verify"] == ["success"]
    assert "success" not in states(again).get("slice", [])
    assert snapshot(target) == before


@pytest.mark.timeout(300)
def test_local_runner_config_error_fails_without_retry(local_runner, tmp_path, monkeypatch):
    """Exit 2 ends the task at the first try, though it has retries left."""
    bag, target = local_runner
    bad = tmp_path / "bad.yml"
    raw = yaml.safe_load(Path(os.environ["XETRA_LOCAL_CONFIG"]).read_text(encoding="utf-8"))
    raw["report"]["format"] = "xlsx"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("XETRA_LOCAL_CONFIG", str(bad))
    weekly = bag.dags["xetra_report1_weekly"]
    when = dt.datetime(2017, 7, 8, 6, 0, tzinfo=BERLIN)

    run = weekly.test(run_after=when, logical_date=when)

    assert str(run.state) == "failed"
    [instance] = run.get_task_instances()
    assert (str(instance.state), instance.try_number) == ("failed", 1)
    assert not target.exists()

"""The xetra report job on Airflow 3: the weekly run and the parallel backfill.

- `xetra_report1_weekly`: Saturday 06:00 Europe/Berlin (deploy/cronworkflow.yaml's schedule),
  up to the day before the run's time in Berlin (Friday), from the earliest date missing in
  the meta file. One run at a time.
- `xetra_report1_backfill` (triggered by hand with from/to/slices): plan -> one mapped task
  per slice (at most 4 at once) -> verify, as deploy/backfill-parallel-workflowtemplate.yaml.

Every task is built by xetra_tasks.JobTasks (KubernetesPodOperator running the image).
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronTriggerTimetable, Param

from xetra_tasks import CONFIG_PATH, PLAN, SLICE, VERIFY, WEEKLY, XCOM_FILE, JobTasks

TIMEZONE = "Europe/Berlin"
WEEKLY_CRON = "0 6 * * 6"
# Friday's hourly objects are complete on Saturday morning; the run's own date in Berlin
# minus one day, so a retry or a late start processes exactly the same window.
YESTERDAY_IN_BERLIN = ("{{ (dag_run.run_after.astimezone(macros.dateutil.tz.gettz("
                       "'Europe/Berlin')) - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}")
ATTEMPT_MINUTES = 30          # the CronWorkflow template's activeDeadlineSeconds (1800 s)
STOP_TAKING_DATES_AFTER = 1500  # --max-seconds: commit and stop 5 minutes before that
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# The public dataset's first day. Runs and tasks before it do not exist; with catchup off the
# schedule itself starts at the next Saturday after the DAG is deployed.
START = dt.datetime(2017, 6, 17, tzinfo=dt.timezone.utc)

# A held lock (exit 3) or S3 trouble (exit 1): 2, 4, 8, 16 minutes (jittered), so the last
# retry comes after a killed run's lock has expired (meta.lock_ttl_seconds: 900).
RETRY_WITH_BACK_OFF = {"retries": 4, "retry_delay": dt.timedelta(minutes=2),
                       "retry_exponential_backoff": 2.0,
                       "max_retry_delay": dt.timedelta(hours=1)}

tasks = JobTasks()

with DAG(
    dag_id="xetra_report1_weekly",
    description="Xetra daily per-ISIN report (report1): the week's new dates",
    schedule=CronTriggerTimetable(WEEKLY_CRON, timezone=TIMEZONE),
    start_date=START,
    catchup=False,             # a missed week is caught up by the next run (meta file)
    max_active_runs=1,         # never two weekly runs (Argo: concurrencyPolicy Forbid)
    dagrun_timeout=dt.timedelta(hours=2),  # the CronWorkflow's activeDeadlineSeconds
    tags=["xetra"],
    doc_md=__doc__,
) as weekly:
    tasks.task("report1", ["--config", CONFIG_PATH, "--to", YESTERDAY_IN_BERLIN,
                           "--max-seconds", str(STOP_TAKING_DATES_AFTER)], WEEKLY,
               execution_timeout=dt.timedelta(minutes=ATTEMPT_MINUTES), **RETRY_WITH_BACK_OFF)


def slice_arguments(item: dict[str, str]) -> list[str]:
    """The job's arguments for one slice of the plan ({"from": ..., "to": ...})."""
    return ["--config", CONFIG_PATH, "--slice", "--from", item["from"], "--to", item["to"]]


with DAG(
    dag_id="xetra_report1_backfill",
    description="Xetra report1 over a date range: plan, slices in parallel, verify",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,         # a second backfill waits (Argo: mutex xetra-report1-backfill)
    params={
        "from": Param(type="string", pattern=DATE_PATTERN,
                      description="first date of the range, YYYY-MM-DD"),
        "to": Param(type="string", pattern=DATE_PATTERN,
                    description="last date of the range, YYYY-MM-DD (at the latest yesterday)"),
        "slices": Param(16, type="integer", minimum=1,
                        description="at most this many slices; at most 4 run at once"),
    },
    tags=["xetra"],
    doc_md=__doc__,
) as backfill:
    RANGE = ["--from", "{{ params['from'] }}", "--to", "{{ params['to'] }}"]
    plan = tasks.task("plan", ["--config", CONFIG_PATH, "--plan", *RANGE,
                               "--slices", "{{ params['slices'] }}", "--plan-file", XCOM_FILE],
                      PLAN, xcom=True, retries=3, retry_delay=dt.timedelta(seconds=30),
                      retry_exponential_backoff=2.0)
    # A slice that finds the weekly run's lock, or its own killed pod's, waits it out.
    slices = tasks.mapped("slice", plan.output.map(slice_arguments), SLICE,
                          max_active_tis_per_dag=4, retries=6,
                          retry_delay=dt.timedelta(minutes=1), retry_exponential_backoff=2.0,
                          max_retry_delay=dt.timedelta(hours=1))
    # Exit 1 here is a failed verification: retrying cannot change the answer. It runs also
    # when the plan was empty (no slice: nothing left to do).
    verify = tasks.task("verify", ["--config", CONFIG_PATH, "--verify", *RANGE], VERIFY,
                        retries=2, retry_delay=dt.timedelta(minutes=1),
                        trigger_rule="none_failed", not_retried=frozenset({1, 2, 4}))
    plan >> slices >> verify  # pylint: disable=pointless-statement

#!/usr/bin/env bash
# The Airflow DAGs (deploy/airflow/dags) checked and run by Airflow itself: a venv of its own
# with the set pinned in deploy/airflow/requirements-test.txt (Airflow's pins conflict with the
# project's), then tests/test_airflow_dags.py there: DagBag parse of the DAGs as shipped
# (KubernetesPodOperator, compared with the Argo manifests) and dag.test() end to end on the
# bundled sample with the local runner, which runs run.py with the project's interpreter.
# The venv is kept in .build/ between runs of one checkout, rebuilt when the pins change.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
venv=.build/airflow-venv
source .ci/lib/pinned-venv.sh
pinned_venv "$venv" deploy/airflow/requirements-test.txt
echo "airflow venv ready after $((SECONDS - started)) s ($("$venv/bin/airflow" version 2>/dev/null | tail -1))"
project_python="${XETRA_PROJECT_PYTHON:-$PWD/.venv/bin/python}"  # runs run.py in the tests
XETRA_PROJECT_PYTHON="$project_python" timeout 900 "$venv/bin/python" -m pytest \
  tests/test_airflow_dags.py -m airflow -o addopts="" -p no:cacheprovider -q
echo "airflow step: $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"

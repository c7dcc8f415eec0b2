"""Tasks that run the xetra image, for the DAGs in xetra_dags.py (copy both into dags/).

One factory, `JobTasks`, builds every task of both DAGs. In production it builds
`XetraPodOperator`s: KubernetesPodOperator with the Argo manifests' settings (ConfigMap
`xetra-config` at /config, Secret `xetra-aws-credentials` as environment, user 10001, read-only
root filesystem, /tmp an emptyDir, the same requests and limits). With
XETRA_AIRFLOW_RUNNER=local it builds `LocalJobOperator`s instead, which run `run.py` with the
same arguments in a subprocess: what the tests execute is what ships, minus Kubernetes.

The job's exit status decides what Airflow does (as `retryStrategy` does in Argo):
0 success; 2 (configuration error) and 4 (overdue source data) fail the task without retries;
3 (another run holds the lock) and 1 (S3 or other run failure) fail the attempt, and the task's
retries back off exponentially past the lock's expiry.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

# Where things are in the cluster: override with environment variables of the scheduler and
# workers (the DAG files are parsed there).
IMAGE = os.environ.get("XETRA_IMAGE", "localhost/xetra:local")
NAMESPACE = os.environ.get("XETRA_NAMESPACE", "xetra")
SERVICE_ACCOUNT = "xetra"                      # deploy/rbac.yaml
CONFIG_MAP = "xetra-config"                    # deploy/configmap.yaml
SECRET = "xetra-aws-credentials"               # deploy/secret.yaml (optional: IRSA instead)
CONFIG_PATH = "/config/xetra.yml"              # the Dockerfile's CMD and the ConfigMap's key
XCOM_FILE = "/airflow/xcom/return.json"        # KubernetesPodOperator's XCom file
RUNNER_VARIABLE = "XETRA_AIRFLOW_RUNNER"       # "kubernetes" (default) or "local"
USER_ID = 10001                                # the Dockerfile's USER

EXIT_MEANINGS = {0: "ok", 1: "run failed", 2: "configuration error",
                 3: "another run holds the lock", 4: "overdue source data"}
NOT_RETRIED = frozenset({2, 4})


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one task's pod (the Argo manifests' values)."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None

    def requests(self) -> dict[str, str]:
        """The pod's resource requests."""
        return {"cpu": self.cpu_request, "memory": self.memory_request}

    def limits(self) -> dict[str, str]:
        """The pod's resource limits."""
        limits = {"memory": self.memory_limit}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        return limits


# deploy/cronworkflow.yaml, and the plan/slice/verify steps of
# deploy/backfill-parallel-workflowtemplate.yaml (tests/test_airflow_dags.py compares them).
WEEKLY = Resources("250m", "512Mi", "1Gi", cpu_limit="1")
PLAN = Resources("100m", "256Mi", "512Mi")
SLICE = Resources("1", "1Gi", "2Gi")
VERIFY = Resources("500m", "512Mi", "1Gi")


def raise_for_exit_status(status: int | None, task: str, detail: str = "",
                          not_retried: Collection[int] = NOT_RETRIED) -> None:
    """Nothing for 0; AirflowFailException (no retry) for `not_retried`; else
    AirflowException, which Airflow retries with the task's back-off."""
    if status == 0:
        return
    meaning = EXIT_MEANINGS.get(status, "unknown status") if status is not None \
        else "no exit status (pod lost?)"
    message = f"{task}: job exit status {status} ({meaning})" + (f": {detail}" if detail else "")
    if status in not_retried:
        raise AirflowFailException(message + "; not retried")
    raise AirflowException(message)


def base_exit_status(remote_pod: Any, container: str = "base") -> int | None:
    """The exit status of the pod's job container, or None when it did not terminate."""
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            return status.state.terminated.exit_code
    return None


class XetraPodOperator(KubernetesPodOperator):
    """KubernetesPodOperator that fails without retries on the job's exit 2 and 4."""

    def __init__(self, *, not_retried: Collection[int] = NOT_RETRIED, **kwargs):
        super().__init__(**kwargs)
        self.not_retried = tuple(not_retried)

    def cleanup(self, pod, remote_pod, *args, **kwargs):  # pylint: disable=arguments-differ
        """The provider's cleanup; its failure becomes final for a status not retried."""
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except AirflowException as exc:
            status = base_exit_status(remote_pod, self.base_container_name)
            if status in self.not_retried:
                raise_for_exit_status(status, self.task_id, str(exc).splitlines()[0],
                                      self.not_retried)
            raise


class LocalJobOperator(BaseOperator):
    """Runs `python run.py ARGUMENTS` where the pod would run the image, for tests.

    The pod's paths are mapped: CONFIG_PATH to XETRA_LOCAL_CONFIG, the XCom file to a
    temporary file read back as KubernetesPodOperator's sidecar does. XETRA_LOCAL_RUN_PY names
    run.py (its folder is the working directory), XETRA_LOCAL_PYTHON the interpreter.
    """

    template_fields: Sequence[str] = ("arguments",)

    def __init__(self, *, arguments: list[str], do_xcom_push: bool = False,
                 not_retried: Collection[int] = NOT_RETRIED, **kwargs):
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        self.arguments = arguments
        self.not_retried = tuple(not_retried)

    def execute(self, context: Any) -> Any:  # pylint: disable=unused-argument
        """Run the job; the status decides as in XetraPodOperator; the plan's XCom returned."""
        run_py = Path(os.environ["XETRA_LOCAL_RUN_PY"])
        python = os.environ.get("XETRA_LOCAL_PYTHON", sys.executable)
        with tempfile.TemporaryDirectory(prefix="xetra-xcom-") as xcom_dir:
            xcom = Path(xcom_dir) / "return.json"
            mapped = {CONFIG_PATH: os.environ["XETRA_LOCAL_CONFIG"], XCOM_FILE: str(xcom)}
            command = [python, str(run_py), *(mapped.get(arg, arg) for arg in self.arguments)]
            self.log.info("running %s", " ".join(command))
            result = subprocess.run(command, cwd=run_py.parent, capture_output=True, text=True,
                                    check=False)
            for line in (result.stdout + result.stderr).splitlines():
                self.log.info("%s", line)
            error = result.stderr.strip().splitlines()
            raise_for_exit_status(result.returncode, self.task_id, error[-1] if error else "",
                                  self.not_retried)
            if self.do_xcom_push:
                return json.loads(xcom.read_text(encoding="utf-8"))
        return None


class JobTasks:
    """The factory of the DAGs' tasks: pods of the image, or local runs of run.py."""

    def __init__(self, runner: str | None = None):
        self.runner = runner or os.environ.get(RUNNER_VARIABLE, "kubernetes")
        if self.runner not in ("kubernetes", "local"):
            raise ValueError(f"{RUNNER_VARIABLE}: expected kubernetes or local, "
                             f"got {self.runner!r}")

    @property
    def operator(self) -> type:
        """The operator class every task is made of."""
        return LocalJobOperator if self.runner == "local" else XetraPodOperator

    def settings(self, task_id: str, resources: Resources, xcom: bool = False,
                 **task_settings: Any) -> dict[str, Any]:
        """Keyword arguments of the operator (without `arguments`)."""
        common = {"task_id": task_id, "do_xcom_push": xcom, **task_settings}
        if self.runner == "local":
            return common
        return {**common, **pod_settings(task_id, resources)}

    def task(self, task_id: str, arguments: list[str], resources: Resources,
             xcom: bool = False, **task_settings: Any) -> BaseOperator:
        """One task running the job with `arguments`."""
        return self.operator(arguments=arguments,
                             **self.settings(task_id, resources, xcom, **task_settings))

    def mapped(self, task_id: str, arguments: Any, resources: Resources,
               **task_settings: Any) -> Any:
        """One task instance per element of `arguments` (an XComArg of argument lists)."""
        return self.operator.partial(**self.settings(task_id, resources, **task_settings)) \
            .expand(arguments=arguments)


def pod_settings(task_id: str, resources: Resources) -> dict[str, Any]:
    """KubernetesPodOperator settings matching the Argo manifests."""
    return {
        "name": f"xetra-{task_id.replace('_', '-')}",
        "namespace": NAMESPACE,
        "image": IMAGE,
        "image_pull_policy": "IfNotPresent",
        "service_account_name": SERVICE_ACCOUNT,
        # No `cmds`: the image's ENTRYPOINT (run.py) runs, `arguments` replace its CMD.
        "env_from": [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(
            name=SECRET, optional=True))],
        "volumes": [k8s.V1Volume(name="config",
                                 config_map=k8s.V1ConfigMapVolumeSource(name=CONFIG_MAP)),
                    k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="config", mount_path="/config",
                                            read_only=True),
                          k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
        "container_resources": k8s.V1ResourceRequirements(requests=resources.requests(),
                                                          limits=resources.limits()),
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=USER_ID, run_as_group=USER_ID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"])),
        "on_finish_action": "delete_succeeded_pod",  # failed pods stay for their logs
        "get_logs": True,
    }

"""Offline validation of every manifest in deploy/ (a file added there later is checked too).

Argo kinds are checked against Argo v4.1.2's full CronWorkflow CRD made strict (misspelt fields
fail at any depth), core kinds with kubernetes-validate's strict schemas; then the checks no
schema makes: the entrypoint names a template, cron expressions parse, the time zone exists,
image, user and config path match the Dockerfile and the CLI, the ConfigMap's config passes the
job's own validation and its logging section really emits the job's log lines.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import jsonschema
import kubernetes_validate
import pytest
import yaml

from xetra.cli import build_parser
from xetra.config import config_from_mapping, configure_logging
from xetra.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
CRD = DEPLOY / "schemas" / "argoproj.io_cronworkflows.full-crd.yaml"
CRD_SHA256 = "31abde1c89c6c11cf1c97753676327e02b2f8dc47827e49383732ac6b1d828c6"
ARGO_API = "argoproj.io/v1alpha1"
K8S_VERSION = "1.34.0"  # Minikube's default Kubernetes at the time of writing
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 2.9 MB: C parser if any


def manifest_files() -> list[Path]:
    """Every YAML file under deploy/ except the vendored schemas."""
    return sorted(path for path in DEPLOY.rglob("*")
                  if path.suffix in (".yaml", ".yml") and "schemas" not in
                  path.relative_to(DEPLOY).parts)


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    """(label, document) for every non-empty YAML document of every manifest file."""
    documents = []
    for path in manifest_files():
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is not None:
                name = (doc.get("metadata") or {}).get("name", "?")
                documents.append((f"{path.name}#{index}:{doc.get('kind')}/{name}", doc))
    return documents


DOCUMENTS = load_documents()


def documents_of(kind: str) -> list[dict[str, Any]]:
    """Every manifest document of one kind."""
    return [doc for _, doc in DOCUMENTS if doc.get("kind") == kind]


def names_of(kind: str) -> set[str]:
    """The metadata names of every manifest document of one kind."""
    return {doc["metadata"]["name"] for doc in documents_of(kind)}


# --- Argo: the CRD schema made strict ---------------------------------------------------------

def strict(schema: Any) -> Any:
    """The CRD's openAPIV3Schema as JSON Schema that rejects unknown fields at every depth."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@lru_cache(maxsize=1)
def crd_schema() -> dict[str, Any]:
    """The strict openAPIV3Schema of the vendored v4.1.2 CronWorkflow CRD."""
    raw = CRD.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CRD_SHA256, f"{CRD} differs from Argo v4.1.2"
    crd = yaml.load(raw, Loader=LOADER)  # nosec: C version of safe_load
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return strict(version["schema"]["openAPIV3Schema"])


@lru_cache(maxsize=None)
def argo_validator(kind: str) -> jsonschema.Draft7Validator:
    """Validator of one Argo kind; a WorkflowTemplate's spec is the CRD's WorkflowSpec."""
    schema = crd_schema()
    if kind == "WorkflowTemplate":
        schema = {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
                  "additionalProperties": False,
                  "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "metadata": {"type": "object"},
                                 "spec": schema["properties"]["spec"]["properties"]
                                 ["workflowSpec"]}}
    return jsonschema.Draft7Validator(schema)


def argo_errors(doc: dict[str, Any]) -> list[str]:
    """Readable schema errors of an Argo manifest: 'path: message' each."""
    errors = sorted(argo_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
    return [f"{'.'.join(str(p) for p in error.path) or '<root>'}: {error.message}"
            for error in errors]


ARGO_KINDS = {"CronWorkflow", "WorkflowTemplate"}
CORE_KINDS = {"ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding"}

# The Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1), the fields of its CRD that
# deploy/monitoring uses, strict: a misspelt field fails as in the Argo check. No schema of the
# operator is vendored, so this is written from its API reference.
_RULE = {"type": "object", "additionalProperties": False,
         "required": ["expr"], "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
         "properties": {"alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                        "record": {"type": "string"}, "expr": {"type": "string", "minLength": 1},
                        "for": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d|w|y)$"},
                        "keep_firing_for": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object",
                                        "additionalProperties": {"type": "string"}}}}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "additionalProperties": False, "required": ["groups"],
                 "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                     "type": "object", "additionalProperties": False,
                     "required": ["name", "rules"],
                     "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                                    "rules": {"type": "array", "minItems": 1,
                                              "items": _RULE}}}}}}}}


@pytest.mark.parametrize("label,doc", DOCUMENTS, ids=[label for label, _ in DOCUMENTS])
def test_manifest_passes_its_schema(label: str, doc: dict[str, Any]) -> None:
    """Each document validates strictly; an unknown kind fails until a validator is added."""
    kind = doc.get("kind")
    if kind in ARGO_KINDS:
        assert doc["apiVersion"] == ARGO_API, label
        assert argo_errors(doc) == [], label
    elif kind == "PrometheusRule":
        errors = jsonschema.Draft7Validator(PROMETHEUS_RULE_SCHEMA).iter_errors(doc)
        assert [f"{list(error.path)}: {error.message}" for error in errors] == [], label
    elif kind in CORE_KINDS:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{label}: {path}: {exc.message}")
    else:
        pytest.fail(f"{label}: no offline validator for kind {kind!r}; add it to this test")


def test_deploy_holds_the_expected_manifests() -> None:
    """The folder is not empty by accident: the kinds the runbook applies are all there."""
    kinds = sorted({doc.get("kind") for _, doc in DOCUMENTS})
    assert kinds == ["ConfigMap", "CronWorkflow", "PrometheusRule", "Role", "RoleBinding",
                     "Secret", "ServiceAccount", "WorkflowTemplate"]


def cron_doc() -> dict[str, Any]:
    """A deep copy of the weekly CronWorkflow, to break in negative tests."""
    return copy.deepcopy(documents_of("CronWorkflow")[0])


def _workflow_container(doc: dict[str, Any]) -> dict[str, Any]:
    return _spec(doc)["templates"][0]["container"]


@pytest.mark.parametrize("breakage,expected", [
    (lambda d: d["spec"].pop("schedules"), "'schedules' is a required property"),
    (lambda d: d["spec"].update(schedule="0 6 * * 6"), "'schedule' was unexpected"),
    (lambda d: d["spec"].update(concurrencyPolicy="Never"), "'Never' is not one of"),
    (lambda d: d["spec"]["workflowSpec"].update(activeDeadlineSeconds="soon"),
     "'soon' is not of type 'integer'"),
    (lambda d: _workflow_container(d)["volumeMounts"][0].update(mountpath="/x"),
     "'mountpath' was unexpected"),
    (lambda d: _workflow_container(d)["resources"]["limits"].update(memory=[1]),
     "is not of type 'integer', 'string'"),
], ids=["no-schedules", "singular-schedule", "bad-enum", "wrong-type", "nested-typo",
        "int-or-string"])
def test_strict_schema_rejects_broken_cronworkflows(breakage, expected: str) -> None:
    """The strict CRD check catches what plain schema.json validation lets through."""
    doc = cron_doc()
    breakage(doc)
    assert any(expected in error for error in argo_errors(doc)), argo_errors(doc)


def test_int_or_string_fields_accept_both_forms() -> None:
    """Kubernetes accepts `cpu: 1` and `cpu: "1"`: the strict schema must too."""
    doc = cron_doc()
    _workflow_container(doc)["resources"]["limits"]["cpu"] = 1
    doc["spec"]["workflowSpec"]["templates"][0]["retryStrategy"]["limit"] = "4"
    assert argo_errors(doc) == []


def test_core_validation_rejects_a_typo() -> None:
    """kubernetes-validate in strict mode really checks field names (a test that can fail)."""
    secret = copy.deepcopy(documents_of("Secret")[0])
    secret["stringDta"] = secret.pop("stringData")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(secret, K8S_VERSION, strict=True)


# --- cron expressions --------------------------------------------------------------------------

CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
               ("month", 1, 12, {m: i for i, m in enumerate(
                   "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
               ("day of week", 0, 7, {d: i for i, d in enumerate(
                   "sun mon tue wed thu fri sat".split())}))


def cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values one field of a standard 5-field cron expression matches."""
    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name}: bad step in {part!r}")
        if base == "*":
            first, last = low, high
        else:
            bounds = [names.get(b, int(b) if b.isdigit() else -1) for b in base.split("-")]
            if len(bounds) > 2 or any(not low <= b <= high for b in bounds):
                raise ValueError(f"{name}: {part!r} is outside {low}-{high}")
            first, last = bounds[0], bounds[-1]
            if len(bounds) == 1 and step:
                last = high
        if first > last:
            raise ValueError(f"{name}: empty range {part!r}")
        values.update(range(first, last + 1, step or 1))
    return values


def parse_cron(expression: str) -> list[set[int]]:
    """Minute, hour, day-of-month, month and day-of-week sets (Sunday as 0 and 7 -> 0)."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"{expression!r}: 5 fields expected, found {len(parts)}")
    fields = [cron_field(part, *spec) for part, spec in zip(parts, CRON_FIELDS)]
    fields[4] = {day % 7 for day in fields[4]}
    return fields


def fire_times(expression: str, zone: str, start: dt.datetime, days: int) -> list[dt.datetime]:
    """When the schedule fires in `zone` during `days` days from `start` (minute by minute)."""
    minute, hour, dom, month, dow = parse_cron(expression)
    tz = ZoneInfo(zone)
    times, moment = [], start.replace(tzinfo=tz)
    for _ in range(days * 24 * 60):
        if (moment.minute in minute and moment.hour in hour and moment.day in dom and
                moment.month in month and (moment.isoweekday() % 7) in dow):
            times.append(moment)
        moment += dt.timedelta(minutes=1)
    return times


@pytest.mark.parametrize("bad", ["0 6 * * 8", "61 6 * * 6", "0 6 * *", "0 6 * * sat-mon",
                                 "0 6 */0 * *", "x 6 * * 6"])
def test_cron_parser_rejects_bad_expressions(bad: str) -> None:
    """The cron check fails on bad expressions, so it is a real check."""
    with pytest.raises(ValueError):
        parse_cron(bad)


def test_cron_parser_expands_by_hand_examples() -> None:
    """Values worked out by hand."""
    assert parse_cron("*/15 6-8 1,15 * sun,7") == [{0, 15, 30, 45}, {6, 7, 8}, {1, 15},
                                                    set(range(1, 13)), {0}]


def test_weekly_schedule_fires_once_a_week_after_fridays_data() -> None:
    """Saturday morning in the stated zone, exactly one run per week, also across DST."""
    cron = cron_doc()["spec"]
    ZoneInfo(cron["timezone"])  # raises when the zone does not exist
    assert cron["timezone"] == "Europe/Berlin"
    for expression in cron["schedules"]:
        # 2026-03-23 (Monday) .. 2026-04-06: the switch to summer time on 2026-03-29 inside.
        times = fire_times(expression, cron["timezone"], dt.datetime(2026, 3, 23), 14)
        assert [t.date() for t in times] == [dt.date(2026, 3, 28), dt.date(2026, 4, 4)]
        # Friday's hourly objects are complete after 00:00 UTC Saturday.
        assert all(t.astimezone(dt.timezone.utc).hour >= 1 for t in times)


def test_cronworkflow_job_control_settings() -> None:
    """The settings the issue asks for, with values that make sense for an exactly-once job."""
    spec = cron_doc()["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 6 * 3600
    workflow = spec["workflowSpec"]
    assert workflow["podGC"]["strategy"] in ("OnPodSuccess", "OnPodCompletion",
                                             "OnWorkflowSuccess", "OnWorkflowCompletion")
    assert workflow["activeDeadlineSeconds"] > 0


# --- what every Argo workflow spec must agree on ------------------------------------------------

def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["workflowSpec"] if doc["kind"] == "CronWorkflow" else doc["spec"]


def workflow_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, WorkflowSpec) of every Argo manifest."""
    for label, doc in DOCUMENTS:
        if doc.get("kind") in ARGO_KINDS:
            yield label, _spec(doc)


WORKFLOWS = list(workflow_specs())
WORKFLOW_IDS = [label for label, _ in WORKFLOWS]


def dockerfile() -> dict[str, Any]:
    """ENTRYPOINT, CMD (JSON form) and USER of the project's Dockerfile."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    found: dict[str, Any] = {}
    for instruction in ("ENTRYPOINT", "CMD", "USER"):
        lines = re.findall(rf"^{instruction}\s+(.+)$", text, re.MULTILINE)
        value = lines[-1].strip()  # the last one of the final stage is the one that counts
        found[instruction] = json.loads(value) if value.startswith("[") else value
    return found


def built_image_name() -> str:
    """The image scripts/build_image.sh tags by default, as podman and Minikube name it."""
    script = (REPO / "scripts" / "build_image.sh").read_text(encoding="utf-8")
    name = re.search(r'^IMAGE="\$\{IMAGE:-([^}]+)\}"', script, re.MULTILINE).group(1)
    return name if "/" in name else f"localhost/{name}"


def substitute(arg: str, spec: dict[str, Any]) -> str:
    """Replace {{workflow.parameters.X}} with a plausible value; an undeclared X fails."""
    declared = {p["name"]: p.get("value") for p in
                (spec.get("arguments") or {}).get("parameters", [])}
    samples = {"from": "2022-01-03", "to": "2022-12-30"}

    def value(match: re.Match) -> str:
        scope, name = match.groups()
        if scope == "workflow":
            assert name in declared, f"{{{{workflow.parameters.{name}}}}} is not declared"
        return samples.get(name) or declared.get(name) or "x"
    return re.sub(r"\{\{\s*(workflow|inputs)\.parameters\.([\w-]+)\s*\}\}", value, arg)


@pytest.mark.parametrize("label,spec", WORKFLOWS, ids=WORKFLOW_IDS)
def test_entrypoint_names_a_template(label: str, spec: dict[str, Any]) -> None:
    """Argo only finds a missing entrypoint at submission; here it fails offline."""
    assert spec["entrypoint"] in {t["name"] for t in spec["templates"]}, label


@pytest.mark.parametrize("label,spec", WORKFLOWS, ids=WORKFLOW_IDS)
def test_container_matches_image_cli_and_config(label: str, spec: dict[str, Any]) -> None:
    """Image, user, arguments, config mount, Secret and account agree with the rest."""
    image = dockerfile()
    assert image["ENTRYPOINT"][-1] == "/app/run.py"
    default_config = image["CMD"][image["CMD"].index("--config") + 1]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == image["USER"].split(":")[0], label
    assert spec["serviceAccountName"] in names_of("ServiceAccount"), label
    for template in spec["templates"]:
        container = template.get("container")
        if container is None:
            continue
        assert container["image"] == built_image_name(), label
        assert "command" not in container, f"{label}: command would bypass ENTRYPOINT"
        args = [substitute(arg, spec) for arg in container["args"]]
        parsed = build_parser().parse_args(args)  # SystemExit on an unknown option
        assert parsed.config == default_config, f"{label}: not the Dockerfile's config path"
        mounts = [m for m in container["volumeMounts"]
                  if parsed.config.startswith(m["mountPath"].rstrip("/") + "/")]
        assert len(mounts) == 1 and mounts[0].get("readOnly") is True, label
        config_map = volumes[mounts[0]["name"]]["configMap"]["name"]
        assert config_map in names_of("ConfigMap"), label
        data = next(d for d in documents_of("ConfigMap") if d["metadata"]["name"] == config_map)
        assert Path(parsed.config).name in data["data"], f"{label}: no such key in {config_map}"
        for source in container.get("envFrom", []):
            assert source["secretRef"]["name"] in names_of("Secret"), label
        assert not [e for e in container.get("env", []) if "value" in e and
                    e["name"].startswith("AWS_SECRET")], f"{label}: a secret in plain text"
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert mebibytes(requests["memory"]) <= mebibytes(limits["memory"]), label


def takes_the_run_lock(container: dict[str, Any]) -> bool:
    """True for a container that processes dates (not a read-only --plan or --verify step)."""
    return not {"--plan", "--verify"} & set(container["args"])


@pytest.mark.parametrize("label,spec", WORKFLOWS, ids=WORKFLOW_IDS)
def test_retries_back_off_and_stop_on_config_errors(label: str, spec: dict[str, Any]) -> None:
    """Retries (safe: the job is exactly-once) back off past the lock's expiry, not on exit 2."""
    lock_ttl = yaml.safe_load(documents_of("ConfigMap")[0]["data"]["xetra.yml"])["meta"][
        "lock_ttl_seconds"]
    for template in spec["templates"]:
        if "container" not in template:
            continue
        retry = template["retryStrategy"]
        if not takes_the_run_lock(template["container"]):
            continue
        assert "exitCode" in retry["expression"] and '"2"' in retry["expression"], label
        backoff = retry["backoff"]
        first = seconds(backoff["duration"])
        waits = [first * int(backoff["factor"]) ** n for n in range(int(retry["limit"]))]
        assert sum(waits) > lock_ttl, f"{label}: every retry would find a killed run's lock"


def retried(expression: str, exit_code: int) -> bool:
    """Whether Argo retries after `exit_code`: the retry expression (expr syntax: `!=`, `&&`,
    `||`, string literals) evaluated here with Python, which reads these operators alike."""
    python = expression.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[a-zA-Z. ]*(lastRetry\.exitCode [!=]= \"\d\"[a-z ]*)+", python), python
    return bool(eval(python, {"__builtins__": {}},  # pylint: disable=eval-used
                     {"lastRetry": SimpleNamespace(exitCode=str(exit_code))}))


@pytest.mark.parametrize("label,spec", WORKFLOWS, ids=WORKFLOW_IDS)
def test_overdue_data_fails_the_workflow_without_retries_and_is_counted(label, spec):
    """Exit 4 (overdue source data) is a failure no retry fixes: the workflow ends Failed at
    once, a counter the PrometheusRule alerts on is emitted, and failed workflows are counted."""
    rules = documents_of("PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    expressions = " ".join(rule["expr"] for rule in rules)
    workflow_metrics = {metric["name"]: metric for metric in spec["metrics"]["prometheus"]}
    failed = workflow_metrics["xetra_report1_workflow_failed"]
    assert failed["when"] == "{{workflow.status}} != Succeeded" and failed["counter"]
    assert "xetra_report1_workflow_failed" in expressions
    for template in spec["templates"]:
        if "container" not in template or not takes_the_run_lock(template["container"]):
            continue
        expression = template["retryStrategy"]["expression"]
        assert [code for code in range(6) if retried(expression, code)] == [0, 1, 3, 5], label
        overdue = {metric["name"]: metric for metric in template["metrics"]["prometheus"]}
        assert overdue["xetra_report1_overdue_data"]["when"] == "{{exitCode}} == 4", label
    assert "xetra_report1_overdue_data" in expressions


def test_retry_expression_reader() -> None:
    assert retried('lastRetry.exitCode != "2"', 1) and not retried('lastRetry.exitCode != "2"', 2)
    assert not retried('lastRetry.exitCode != "2" && lastRetry.exitCode != "4"', 4)
    with pytest.raises(AssertionError):
        retried("__import__('os')", 1)


def test_prometheus_rule_schema_rejects_a_typo() -> None:
    rule = copy.deepcopy(documents_of("PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["exprs"] = "up"
    assert list(jsonschema.Draft7Validator(PROMETHEUS_RULE_SCHEMA).iter_errors(rule))


def seconds(duration: str) -> int:
    """An Argo duration such as '90', '2m' or '1h' in seconds."""
    number, unit = re.fullmatch(r"(\d+)([smh]?)", duration).groups()
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (Mi, Gi, M, G or bytes) in MiB."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi|M|G)?", str(quantity)).groups()
    factor = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20, None: 1 / 2**20}[unit]
    return float(number) * factor


def test_quantity_and_duration_helpers() -> None:
    """By hand: 1Gi = 1024 MiB, 512Mi = 512, 2m = 120 s."""
    assert (mebibytes("1Gi"), mebibytes("512Mi"), seconds("2m"), seconds("1h")) == \
        (1024, 512, 120, 3600)


def test_backfill_takes_from_and_to() -> None:
    """The on-demand backfill passes its two parameters to --from and --to."""
    template = next(d["spec"] for d in documents_of("WorkflowTemplate")
                    if d["metadata"]["name"] == "xetra-report1-backfill")
    assert [p["name"] for p in template["arguments"]["parameters"]] == ["from", "to"]
    args = [substitute(a, template) for a in template["templates"][0]["container"]["args"]]
    parsed = build_parser().parse_args(args)
    assert (parsed.first, parsed.last) == ("2022-01-03", "2022-12-30")


def test_an_undeclared_parameter_is_caught() -> None:
    """substitute() fails on a typo such as {{workflow.parameters.form}}."""
    with pytest.raises(AssertionError, match="form"):
        substitute("{{workflow.parameters.form}}", documents_of("WorkflowTemplate")[0]["spec"])


# --- Secret and ConfigMap ----------------------------------------------------------------------

def test_secret_holds_placeholders_only() -> None:
    """The committed Secret is a shape: boto3's variable names, no real-looking key."""
    for secret in documents_of("Secret"):
        values = {**secret.get("stringData", {}), **secret.get("data", {})}
        assert sorted(values) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        for value in values.values():
            assert value.startswith("REPLACE-WITH-"), value
            assert not re.fullmatch(r"(AKIA|ASIA)[A-Z0-9]{16}", value)


def config_texts() -> list[tuple[str, str]]:
    """(label, text) of every YAML config embedded in a ConfigMap."""
    return [(f"{doc['metadata']['name']}/{key}", text)
            for doc in documents_of("ConfigMap") for key, text in doc["data"].items()
            if key.endswith((".yml", ".yaml"))]


def logged_by_config(text: str) -> str:
    """What the config's logging section writes for the job's INFO lines (stdout captured)."""
    config = config_from_mapping(yaml.safe_load(text))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("botocore").level)
    stdout = io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stdout", stdout)
            configure_logging(config)  # the job's own code path
            logging.getLogger("xetra.etl").info("probe: 2022-01-03 processed")
            logging.getLogger("xetra").info("run summary: probe")
            for handler in root.handlers:
                handler.flush()
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("botocore").setLevel(saved[2])
    return stdout.getvalue()


@pytest.mark.parametrize("label,text", config_texts(), ids=[label for label, _ in config_texts()])
def test_configmap_config_is_valid_and_logs(label: str, text: str) -> None:
    """The embedded config passes the job's validation and its INFO lines reach the pod log."""
    config = config_from_mapping(yaml.safe_load(text))
    assert config.source.is_s3 and config.target.is_s3, label
    assert config.source.unsigned is True
    output = logged_by_config(text)
    assert "INFO xetra.etl: probe: 2022-01-03 processed" in output, label
    assert "INFO xetra: run summary: probe" in output, label


def test_misindented_logging_block_is_caught() -> None:
    """handlers indented under formatters: the job rejects it, naming logging.handlers."""
    text = config_texts()[0][1].replace("\n  handlers:\n", "\n    handlers:\n")
    assert text != config_texts()[0][1]
    with pytest.raises(ConfigError, match="logging.handlers"):
        logged_by_config(text)


def test_silenced_logging_is_caught() -> None:
    """A root level above INFO passes validation but drops the summary: the probe sees it."""
    text = config_texts()[0][1].replace("root:\n    level: INFO", "root:\n    level: ERROR")
    assert text != config_texts()[0][1]
    assert logged_by_config(text) == ""

"""deploy/aws/template.yaml against the code and the image: what cfn-lint (.ci/steps/40-aws.sh)
cannot know. The handler it names exists, the entry point is the image's venv, the schedule is
the CronWorkflow's, the metric filter matches the handler's overdue marker, IAM is scoped."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from testkit.paths import REPO
from xetra import aws_lambda

TEMPLATE = REPO / "deploy" / "aws" / "template.yaml"


class CfnLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as {"Tag": value}."""


def _tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict[str, Any]:
    """The parsed template."""
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CfnLoader)  # nosec: safe


def resources(kind: str) -> list[dict[str, Any]]:
    """The properties of every resource of one type."""
    return [r["Properties"] for r in template()["Resources"].values() if r["Type"] == kind]


def test_function_runs_the_handler_through_the_runtime_client():
    [function] = resources("AWS::Lambda::Function")
    assert function["PackageType"] == "Image"
    config = function["ImageConfig"]
    assert config["EntryPoint"] == ["/opt/venv/bin/python", "-m", "awslambdaric"]
    module, name = config["Command"][0].rsplit(".", 1)
    assert importlib.import_module(module).__dict__[name] is aws_lambda.lambda_handler
    assert config["WorkingDirectory"] == "/app"
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "/app/run.py"]' in dockerfile
    assert "requirements-lambda.txt" in dockerfile
    variables = function["Environment"]["Variables"]
    assert set(variables) == {aws_lambda.ENV_CONFIG, aws_lambda.ENV_MARGIN,
                              aws_lambda.ENV_RETRY_WAIT_SECONDS}
    assert aws_lambda.HandlerSettings.from_environ(
        {**variables, aws_lambda.ENV_CONFIG: "s3://b/k"}).margin_seconds == 120
    # The margin leaves time to finish the day in hand and commit.
    assert float(variables[aws_lambda.ENV_MARGIN]) < function["Timeout"] <= 900
    assert function["ReservedConcurrentExecutions"] == 1


def test_schedule_is_the_cronworkflows():
    """cron(0 6 ? * SAT *) in Europe/Berlin is Argo's "0 6 * * 6" in the same zone."""
    [schedule] = resources("AWS::Scheduler::Schedule")
    cron = yaml.safe_load((REPO / "deploy" / "cronworkflow.yaml").read_text())["spec"]
    assert schedule["ScheduleExpressionTimezone"] == cron["timezone"]
    minute, hour, _, _, weekday = cron["schedules"][0].split()
    assert (minute, hour, weekday) == ("0", "6", "6")
    assert schedule["ScheduleExpression"] == "cron(0 6 ? * SAT *)"
    assert schedule["Target"]["Input"] == "{}"  # the weekly run: no from/to


def test_overdue_alarm_watches_the_handlers_marker():
    [metric_filter] = resources("AWS::Logs::MetricFilter")
    assert metric_filter["FilterPattern"] == f'"{aws_lambda.OVERDUE_MARKER}"'
    transformation = metric_filter["MetricTransformations"][0]
    alarms = {a["MetricName"]: a for a in resources("AWS::CloudWatch::Alarm")}
    assert set(alarms) == {"Errors", transformation["MetricName"]}
    assert alarms[transformation["MetricName"]]["Namespace"] == \
        transformation["MetricNamespace"]
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    [invoke] = resources("AWS::Lambda::EventInvokeConfig")
    assert invoke["MaximumRetryAttempts"] == 0  # the handler retries what a retry can fix


def test_function_role_is_scoped():
    """No wildcard resource, no s3:* action; writes only under the target prefix."""
    [role] = [r["Properties"] for name, r in template()["Resources"].items()
              if name == "FunctionRole"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        assert statement["Resource"] != "*", statement
    writes = [s for s in statements if "s3:PutObject" in s["Action"] or
              "s3:DeleteObject" in s["Action"]]
    assert writes == [by_sid["ReadWriteTargetPrefix"]]
    assert by_sid["ReadWriteTargetPrefix"]["Resource"] == {
        "Sub": "arn:${AWS::Partition}:s3:::${TargetBucket}/${TargetPrefix}*"}
    assert by_sid["ReadConfig"]["Resource"] == {
        "Sub": "arn:${AWS::Partition}:s3:::${ConfigBucket}/${ConfigKey}"}


def test_loader_reads_short_tags():
    """!Ref/!Sub/!GetAtt become one-key mappings (a typo'd tag would not vanish)."""
    assert yaml.load("a: !Ref X\nb: !GetAtt F.Arn\nc: !Not [!Equals [1, 2]]",
                     Loader=CfnLoader) == {"a": {"Ref": "X"}, "b": {"GetAtt": "F.Arn"},
                                           "c": {"Not": [{"Equals": [1, 2]}]}}
    assert Path(TEMPLATE).exists()

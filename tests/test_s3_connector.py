"""S3BucketConnector in-process, without a server: botocore's Stubber answers each call, and
the error translation is checked on hand-made botocore errors."""
import io

import boto3
import pytest
from botocore import UNSIGNED
from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                 PartialCredentialsError, ReadTimeoutError)
from botocore.response import StreamingBody
from botocore.stub import Stubber

from xetra.config import S3ClientSettings, StorageLocation
from xetra.errors import ObjectNotFound, PreconditionFailed, StorageError
from xetra.s3 import S3BucketConnector, new_session, send_body_at_once
from xetra.storage import ObjectInfo, VersionedBytes

WHERE = "cannot read s3://xetra-b/p/k"


@pytest.fixture(name="connector")
def connector_fixture(monkeypatch):
    """A connector to s3://xetra-b/p/ on an endpoint nothing is sent to."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return S3BucketConnector(StorageLocation("s3://xetra-b/p", "http://127.0.0.1:9",
                                             "eu-central-1"))


def client_error(code: str, status: int, message: str = "") -> ClientError:
    """A botocore ClientError as S3 answers it."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("code, status, kind, line", [
    ("PreconditionFailed", 412, PreconditionFailed, f"{WHERE}: precondition failed "
                                                    "(PreconditionFailed)"),
    ("ConditionalRequestConflict", 409, PreconditionFailed,
     f"{WHERE}: precondition failed (ConditionalRequestConflict)"),
    ("412", 412, PreconditionFailed, f"{WHERE}: precondition failed (412)"),
    ("409", 409, PreconditionFailed, f"{WHERE}: precondition failed (409)"),
    ("", 412, PreconditionFailed, f"{WHERE}: precondition failed ()"),
    ("NoSuchKey", 404, ObjectNotFound, f"{WHERE}: no such object"),
    ("404", 404, ObjectNotFound, f"{WHERE}: no such object"),
    ("NotFound", 404, ObjectNotFound, f"{WHERE}: no such object"),
    ("NoSuchBucket", 404, StorageError, f"{WHERE}: bucket xetra-b does not exist"),
    ("AccessDenied", 403, StorageError, f"{WHERE}: access denied"),
    ("403", 403, StorageError, f"{WHERE}: access denied"),
    ("InvalidAccessKeyId", 403, StorageError, f"{WHERE}: access denied (unknown access key)"),
    ("SignatureDoesNotMatch", 403, StorageError, f"{WHERE}: access denied (bad secret key)"),
    ("SlowDown", 503, StorageError, f"{WHERE}: SlowDown Please reduce your request rate."),
    ("", 500, StorageError, f"{WHERE}: 500"),
])
def test_client_errors_become_one_line_of_the_right_kind(connector, code, status, kind, line):
    error = connector._error(  # pylint: disable=protected-access
        client_error(code, status, "Please reduce your request rate." if status == 503 else ""),
        WHERE)
    assert type(error) is kind  # pylint: disable=unidiomatic-typecheck
    assert str(error) == line


def test_other_botocore_errors(connector):
    assert str(connector._error(NoCredentialsError(), WHERE)) == (  # pylint: disable=W0212
        f"{WHERE}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a "
        "profile or a role, or source.unsigned for a public bucket)")
    assert str(connector._error(PartialCredentialsError(  # pylint: disable=W0212
        provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), WHERE)).startswith(
            f"{WHERE}: no AWS credentials found")
    assert str(connector._error(EndpointConnectionError(  # pylint: disable=W0212
        endpoint_url="http://127.0.0.1:9"), WHERE)) == (
            f"{WHERE}: cannot connect to the S3 endpoint http://127.0.0.1:9 "
            "(EndpointConnectionError)")
    timeout = ReadTimeoutError(endpoint_url="http://127.0.0.1:9/xetra-b")
    assert str(connector._error(timeout, WHERE)) == (  # pylint: disable=W0212
        f"{WHERE}: ReadTimeoutError: {timeout}")
    assert type(connector._error(timeout, WHERE)) is StorageError  # pylint: disable=W0212,C0123


def test_client_settings_are_the_configured_ones(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = S3ClientSettings(retry_mode="adaptive", max_attempts=3, connect_timeout=2.5,
                                read_timeout=7.0)
    connector = S3BucketConnector(StorageLocation("s3://xetra-b/", "http://127.0.0.1:9",
                                                  "eu-west-1"), settings, max_pool_connections=17)
    config = connector.client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (2.5, 7.0)
    assert config.max_pool_connections == 17
    assert config.signature_version == "s3v4"  # signed: botocore's default for S3
    assert connector.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert connector.client.meta.region_name == "eu-west-1"
    assert (connector.bucket_name, connector.prefix) == ("xetra-b", "")
    public = S3BucketConnector(StorageLocation("s3://deutsche-boerse-xetra-pds/", None,
                                               "eu-central-1", unsigned=True))
    assert public.client.meta.config.signature_version is UNSIGNED
    assert public.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}
    assert public.client.meta.config.max_pool_connections == 10
    assert (public.client.meta.config.connect_timeout,
            public.client.meta.config.read_timeout) == (10.0, 60.0)


class Request:  # pylint: disable=too-few-public-methods
    """What botocore's before-sign event hands over: an object with headers."""

    def __init__(self, headers):
        self.headers = headers


def test_expect_header_is_dropped_and_nothing_else():
    request = Request({"Expect": "100-continue", "Content-MD5": "x"})
    send_body_at_once(request)
    assert request.headers == {"Content-MD5": "x"}
    request = Request({"Content-MD5": "x"})
    send_body_at_once(request)
    assert request.headers == {"Content-MD5": "x"}


def body(data: bytes) -> StreamingBody:
    """A GetObject body."""
    return StreamingBody(io.BytesIO(data), len(data))


def test_listing_follows_pages_and_strips_the_prefix(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("list_objects_v2", {
            "Contents": [{"Key": "p/2021-03-02/b.csv", "Size": 7},
                         {"Key": "p/2021-03-01/a.csv", "Size": 5}],
            "IsTruncated": True, "NextContinuationToken": "t1"},
            {"Bucket": "xetra-b", "Prefix": "p/2021-03"})
        stub.add_response("list_objects_v2", {
            "Contents": [{"Key": "p/2021-03-01/c.csv", "Size": 9}], "IsTruncated": False},
            {"Bucket": "xetra-b", "Prefix": "p/2021-03", "ContinuationToken": "t1"})
        assert connector.list_objects("2021-03") == [
            ObjectInfo("2021-03-01/a.csv", 5), ObjectInfo("2021-03-01/c.csv", 9),
            ObjectInfo("2021-03-02/b.csv", 7)]
        stub.assert_no_pending_responses()


def test_folders_are_the_common_prefixes_without_the_slash(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("list_objects_v2", {
            "CommonPrefixes": [{"Prefix": "p/x/2021-03-02/"}, {"Prefix": "p/x/2021-03-01/"}],
            "IsTruncated": True, "NextContinuationToken": "t1"},
            {"Bucket": "xetra-b", "Prefix": "p/x/", "Delimiter": "/"})
        stub.add_response("list_objects_v2", {
            "CommonPrefixes": [{"Prefix": "p/x/2020-12-31/"}], "IsTruncated": False},
            {"Bucket": "xetra-b", "Prefix": "p/x/", "Delimiter": "/", "ContinuationToken": "t1"})
        assert connector.list_folders("x/") == ["2020-12-31", "2021-03-01", "2021-03-02"]


def test_a_failed_listing_names_the_prefix(connector):
    with Stubber(connector.client) as stub:
        stub.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", 403)
        with pytest.raises(StorageError) as raised:
            connector.list_folders("x/")
    assert str(raised.value) == "cannot list s3://xetra-b/p/x/: access denied"


def test_reads(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("get_object", {"Body": body(b"abc")}, {"Bucket": "xetra-b",
                                                                 "Key": "p/k"})
        stub.add_response("get_object", {"Body": body(b"de"), "ETag": '"e1"'},
                          {"Bucket": "xetra-b", "Key": "p/m"})
        stub.add_client_error("get_object", "NoSuchKey", "", 404,
                              expected_params={"Bucket": "xetra-b", "Key": "p/gone"})
        stub.add_client_error("get_object", "NoSuchKey", "", 404,
                              expected_params={"Bucket": "xetra-b", "Key": "p/gone"})
        assert connector.get_bytes("k") == b"abc"
        assert connector.get_versioned("m") == VersionedBytes(b"de", '"e1"')
        assert connector.get_versioned("gone") is None
        with pytest.raises(ObjectNotFound) as raised:
            connector.get_bytes("gone")
    assert str(raised.value) == "cannot read s3://xetra-b/p/gone: no such object"


def test_writes_send_their_conditions(connector):
    with Stubber(connector.client) as stub:
        for conditions in ({}, {"IfNoneMatch": "*"}, {"IfMatch": '"e1"'}):
            stub.add_response("put_object", {"ETag": '"e2"'},
                              {"Bucket": "xetra-b", "Key": "p/k", "Body": b"x", **conditions})
        assert connector.put_bytes("k", b"x") == '"e2"'
        assert connector.put_bytes("k", b"x", if_none_match=True) == '"e2"'
        assert connector.put_bytes("k", b"x", if_match='"e1"') == '"e2"'
        stub.assert_no_pending_responses()


def test_a_replaced_object_that_is_gone_is_a_failed_condition(connector):
    with Stubber(connector.client) as stub:
        stub.add_client_error("put_object", "NoSuchKey", "", 404)
        stub.add_client_error("put_object", "NoSuchKey", "", 404)
        with pytest.raises(PreconditionFailed) as raised:
            connector.put_bytes("k", b"x", if_match='"e1"')
        assert str(raised.value) == ("cannot write s3://xetra-b/p/k: it was removed since it "
                                     "was read")
        with pytest.raises(ObjectNotFound):  # without a condition: as S3 said
            connector.put_bytes("k", b"x")


def test_delete_and_its_error(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("delete_object", {}, {"Bucket": "xetra-b", "Key": "p/k"})
        stub.add_client_error("delete_object", "AccessDenied", "", 403)
        connector.delete("k")
        with pytest.raises(StorageError) as raised:
            connector.delete("k")
    assert str(raised.value) == "cannot delete s3://xetra-b/p/k: access denied"


def test_access_check(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("head_bucket", {}, {"Bucket": "xetra-b"})
        stub.add_client_error("head_bucket", "404", "", 404)
        stub.add_client_error("head_bucket", "403", "", 403)
        connector.check_access()
        with pytest.raises(StorageError) as missing:
            connector.check_access()
        with pytest.raises(StorageError) as denied:
            connector.check_access()
    assert str(missing.value) == "bucket xetra-b does not exist (s3://xetra-b/p/)"
    assert str(denied.value) == "cannot access s3://xetra-b/p/: access denied"
    assert connector.describe("k") == "s3://xetra-b/p/k"


def test_bare_client_errors_still_give_one_line(connector):
    """An error response without Error, Code, Message or status (a proxy's bare answer)."""
    assert str(connector._error(ClientError({}, "GetObject"), WHERE)) == (  # pylint: disable=W0212
        f"{WHERE}: None")
    no_message = ClientError({"Error": {"Code": "SlowDown"}}, "GetObject")
    assert str(connector._error(no_message, WHERE)) == f"{WHERE}: SlowDown"  # pylint: disable=W0212
    status_only = ClientError({"ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject")
    assert str(connector._error(status_only, WHERE)) == f"{WHERE}: 500"  # pylint: disable=W0212


def test_every_failing_call_names_its_action_and_key(connector):
    with Stubber(connector.client) as stub:
        for method in ("list_objects_v2", "get_object", "put_object", "put_object"):
            stub.add_client_error(method, "AccessDenied", "", 403)
        with pytest.raises(StorageError) as listing:
            connector.list_objects("2021-03")
        with pytest.raises(StorageError) as reading:
            connector.get_versioned("k")
        with pytest.raises(StorageError) as writing:
            connector.put_bytes("k", b"x")
        with pytest.raises(StorageError) as replacing:
            connector.put_bytes("k", b"x", if_match='"e1"')
    assert str(listing.value) == "cannot list s3://xetra-b/p/2021-03: access denied"
    assert str(reading.value) == "cannot read s3://xetra-b/p/k: access denied"
    assert str(writing.value) == str(replacing.value) == \
        "cannot write s3://xetra-b/p/k: access denied"


def test_pages_without_entries_and_the_whole_bucket(connector):
    with Stubber(connector.client) as stub:
        stub.add_response("list_objects_v2", {"IsTruncated": False},
                          {"Bucket": "xetra-b", "Prefix": "p/", "Delimiter": "/"})
        stub.add_response("list_objects_v2", {"IsTruncated": False},
                          {"Bucket": "xetra-b", "Prefix": "p/x"})
        stub.add_response("list_objects_v2", {
            "CommonPrefixes": [{"Prefix": "p/2021-03-01/"}], "IsTruncated": False},
            {"Bucket": "xetra-b", "Prefix": "p/", "Delimiter": "/"})
        assert connector.list_folders() == []
        assert connector.list_objects("x") == []
        assert connector.list_folders() == ["2021-03-01"]


def test_conditional_delete_sends_if_match_and_takes_a_missing_object_as_gone(connector):
    """S3's conditional DELETE: IfMatch sent as given; 412 is a failed condition; a 404 (AWS's
    answer for an object that is not there) means gone already, but only with a condition."""
    where = {"Bucket": "xetra-b", "Key": "p/meta/lock"}
    with Stubber(connector.client) as stub:
        stub.add_response("delete_object", {}, {**where, "IfMatch": '"e1"'})
        stub.add_client_error("delete_object", "NoSuchKey", "", 404,
                              expected_params={**where, "IfMatch": '"e1"'})
        stub.add_client_error("delete_object", "PreconditionFailed", "", 412,
                              expected_params={**where, "IfMatch": '"e1"'})
        stub.add_client_error("delete_object", "NoSuchKey", "", 404, expected_params=where)
        assert connector.delete("meta/lock", if_match='"e1"') is None
        assert connector.delete("meta/lock", if_match='"e1"') is None
        with pytest.raises(PreconditionFailed) as refused:
            connector.delete("meta/lock", if_match='"e1"')
        with pytest.raises(ObjectNotFound) as missing:  # without a condition: as S3 said
            connector.delete("meta/lock")
        stub.assert_no_pending_responses()
    assert str(refused.value) == ("cannot delete s3://xetra-b/p/meta/lock: precondition failed "
                                  "(PreconditionFailed)")
    assert str(missing.value) == "cannot delete s3://xetra-b/p/meta/lock: no such object"


def test_the_client_comes_from_the_given_session(monkeypatch):
    """`session`: the client is made from it (its credentials, not the environment's); without
    one, from a new Session of boto3's default chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    location = StorageLocation("s3://xetra-b/p", "http://127.0.0.1:9", "eu-central-1")
    session = boto3.session.Session(aws_access_key_id="from-the-session",
                                    aws_secret_access_key="s")
    given = S3BucketConnector(location, session=session)
    default = S3BucketConnector(location)
    assert given.client._request_signer._credentials.access_key == (  # pylint: disable=W0212
        "from-the-session")
    assert default.client._request_signer._credentials.access_key == (  # pylint: disable=W0212
        "from-the-environment")
    assert isinstance(new_session(), boto3.session.Session)
    assert new_session() is not new_session()

"""The source index: one listing per month instead of one per date, the same objects as
per-date listing, and far fewer LIST calls over a long range (issue 13)."""
import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from testkit.localetl import make_etl
from testkit.sourcedata import bar, write_day, write_no_trading_day
from xetra.config import S3ClientSettings, StorageLocation
from xetra.s3 import S3BucketConnector
from xetra.source_index import SourceIndex, group_by_date, month_of
from xetra.errors import StorageError
from xetra.storage import LocalStorage, ObjectInfo

# Keys of a source bucket around a month boundary, and keys no date folder holds.
DATED = {
    "2021-02-26/2021-02-26_BINS_XETR08.csv": 300,
    "2021-02-26/2021-02-26_BINS_XETR09.csv": 136,
    "2021-02-28/2021-02-28_BINS_XETR08.csv": 136,
    "2021-03-01/2021-03-01_BINS_XETR07.csv": 250,
    "2021-03-01/2021-03-01_BINS_XETR08.csv": 400,
    "2021-03-01/nested/2021-03-01_BINS_XETR08.csv": 12,
    "2021-03-31/2021-03-31_BINS_XETR20.csv": 99,
}
OTHERS = {"2021-03-notes.txt": 5, "2021-03.csv": 6, "other/2021-03-01/x.csv": 7,
          "2021-03-01.csv": 8}


class CountingStore:
    """A store that counts its list_objects calls (and forwards everything)."""

    def __init__(self, store):
        self.store = store
        self.prefixes: list[str] = []

    def list_objects(self, prefix):
        """Counted, then forwarded."""
        self.prefixes.append(prefix)
        return self.store.list_objects(prefix)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture(name="bucket")
def bucket_fixture(aws_env):  # pylint: disable=unused-argument
    """An S3BucketConnector (prefix 'src/') on a moto bucket with DATED and OTHERS."""
    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(Bucket="xetra-index", CreateBucketConfiguration={
            "LocationConstraint": "eu-central-1"})
        for key, size in {**DATED, **OTHERS}.items():
            client.put_object(Bucket="xetra-index", Key="src/" + key, Body=b"x" * size)
        client.put_object(Bucket="xetra-index", Key="2021-03-01/outside-prefix.csv", Body=b"x")
        yield client, S3BucketConnector(StorageLocation("s3://xetra-index/src"),
                                        S3ClientSettings(max_attempts=1))


def expected_objects(day: str) -> list[ObjectInfo]:
    """What listing the date's folder gives, written out from DATED by hand."""
    return sorted((ObjectInfo(key, size) for key, size in DATED.items()
                   if key.startswith(day + "/")), key=lambda info: info.key)


@pytest.mark.parametrize("day", ["2021-02-26", "2021-02-27", "2021-02-28", "2021-03-01",
                                 "2021-03-02", "2021-03-31", "2021-04-01"])
def test_same_objects_as_the_date_listing(bucket, day):
    """Dates with objects, without, on both sides of a month boundary: the index gives what
    listing the date's prefix gives, and what the keys say by hand."""
    _, store = bucket
    index = SourceIndex(store)
    assert index.objects(dt.date.fromisoformat(day)) == store.list_objects(f"{day}/")
    assert index.objects(dt.date.fromisoformat(day)) == expected_objects(day)


def test_one_list_call_per_month_and_keys_outside_date_folders_ignored(bucket):
    """Every date of February and March: two listings (one per month), and no object outside
    a date folder shows up under any date."""
    _, store = bucket
    counting = CountingStore(store)
    index = SourceIndex(counting)
    seen = []
    for offset in range(59):  # 2021-02-01 .. 2021-03-31
        seen.extend(index.objects(dt.date(2021, 2, 1) + dt.timedelta(days=offset)))
    assert sorted(counting.prefixes) == ["2021-02", "2021-03"]
    assert sorted(info.key for info in seen) == sorted(DATED)


def test_pagination_beyond_1000_keys(aws_env):  # pylint: disable=unused-argument
    """A month of 31 x 40 = 1240 keys (two ListObjectsV2 pages): every date has its 40."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="many")
        for day in range(1, 32):
            for hour in range(40):
                client.put_object(Bucket="many", Key=f"2021-03-{day:02d}/{hour:02d}.csv", Body=b"")
        store = S3BucketConnector(StorageLocation("s3://many"), S3ClientSettings(max_attempts=1))
        pages = []
        store.client.meta.events.register("before-call.s3.ListObjectsV2",
                                          lambda **kwargs: pages.append(1))
        index = SourceIndex(store)
        counts = [len(index.objects(dt.date(2021, 3, day))) for day in range(1, 32)]
    assert counts == [40] * 31
    assert len(pages) == math.ceil(31 * 40 / 1000) == 2


def test_listings_are_kept_for_max_age_only(bucket):
    """An object written after the month was listed is seen once the listing is older than
    max_age (a fake clock), not before."""
    client, store = bucket
    now = [100.0]
    counting = CountingStore(store)
    index = SourceIndex(counting, max_age=60, clock=lambda: now[0])
    day = dt.date(2021, 3, 2)
    assert not index.objects(day)
    client.put_object(Bucket="xetra-index", Key="src/2021-03-02/2021-03-02_BINS_XETR09.csv",
                      Body=b"y" * 3)
    now[0] += 60
    assert not index.objects(day)
    now[0] += 1
    assert index.objects(day) == [ObjectInfo("2021-03-02/2021-03-02_BINS_XETR09.csv", 3)]
    assert counting.prefixes == ["2021-03", "2021-03"]


def test_concurrent_readers_share_one_listing(bucket):
    """Eight threads asking for dates of one month: one LIST."""
    _, store = bucket
    counting = CountingStore(store)
    index = SourceIndex(counting)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(index.objects, [dt.date(2021, 3, 1)] * 8))
    assert found == [expected_objects("2021-03-01")] * 8
    assert counting.prefixes == ["2021-03"]


def test_folders_prefetch_only_months_with_date_folders(bucket):
    """Five years of dates with folders in two months only (plus margin before the range):
    two listings, started by folders(), whatever dates are asked afterwards."""
    _, store = bucket
    counting = CountingStore(store)
    index = SourceIndex(counting)
    names = index.folders(dt.date(2016, 3, 8), dt.date(2021, 3, 7))
    assert "2021-03-01" in names and "2021-02-26" in names
    assert index.objects(dt.date(2021, 3, 1)) == expected_objects("2021-03-01")
    assert index.objects(dt.date(2021, 2, 26)) == expected_objects("2021-02-26")
    assert sorted(counting.prefixes) == ["2021-02", "2021-03"]


def test_group_by_date_and_month_of():
    """Keys without a date folder are dropped; a month prefix has a zero-padded month."""
    grouped = group_by_date([ObjectInfo("2021-03-01/a.csv", 1), ObjectInfo("2021-03.csv", 2),
                             ObjectInfo("2021-03-01/b/c.csv", 3), ObjectInfo("x/y", 4)])
    assert grouped == {"2021-03-01": [ObjectInfo("2021-03-01/a.csv", 1),
                                      ObjectInfo("2021-03-01/b/c.csv", 3)]}
    assert month_of(dt.date(2021, 3, 9)) == "2021-03"


def test_local_month_prefix_walks_only_that_month(tmp_path):
    """LocalStorage.list_objects("2021-03") gives the files of the 2021-03* entries only (a
    file in 2021-04-01 or other/ is not listed), as the S3 prefix does."""
    for key in ["2021-03-01/a.csv", "2021-03-01/n/b.csv", "2021-03-31/c.csv", "2021-03.csv",
                "2021-04-01/d.csv", "other/2021-03-01/e.csv", "2021-03-02/.tmp-1234"]:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * len(key))
    store = LocalStorage(tmp_path)
    assert [info.key for info in store.list_objects("2021-03")] == [
        "2021-03-01/a.csv", "2021-03-01/n/b.csv", "2021-03-31/c.csv", "2021-03.csv"]
    assert store.list_objects("2021-03-01/") == [ObjectInfo("2021-03-01/a.csv", 16),
                                                 ObjectInfo("2021-03-01/n/b.csv", 18)]
    assert store.list_objects("2021-05") == []


def test_a_run_over_five_years_lists_per_month_not_per_date(tmp_path):
    """A run from 2016-03-08 to 2021-03-07 with source in five dates of March 2021: the
    source is listed once per month with folders (February for the look-back of 2021-03-01,
    March), not once per date; and the report is the same as reading the dates alone."""
    source, target = tmp_path / "src", tmp_path / "out"
    trades = [bar("DE0007164600", "09:00", 10.0, 11.0, 5)]
    write_day(source, dt.date(2021, 2, 26), [bar("DE0007164600", "09:00", 9.0, 10.0, 5)])
    write_no_trading_day(source, dt.date(2021, 2, 27))
    for day in range(1, 4):
        write_day(source, dt.date(2021, 3, day), trades)
    with ThreadPoolExecutor(4) as pool:
        etl = make_etl((source, target), pool, max_wait_days=36500)
        counting = CountingStore(etl.reader.store)
        etl.reader.store = counting
        etl.reader.index = SourceIndex(counting)
        summary = etl.etl_report1(dt.date(2016, 3, 8), dt.date(2021, 3, 7))
    assert sorted(counting.prefixes) == ["2021-02", "2021-03"]
    assert summary.report_rows == 4  # 2021-02-26 and the three March dates
    assert summary.processed[0] == dt.date(2021, 2, 26)


def test_a_failed_listing_fails_every_date_of_the_month_once(tmp_path):
    """A month whose LIST fails (after the client's retries) fails each of its dates with that
    error, without listing again until max_age has passed."""
    calls = []

    class Failing(LocalStorage):
        """A folder whose listing fails."""

        def list_objects(self, prefix):
            calls.append(prefix)
            raise StorageError(f"cannot list {prefix}: SlowDown")

    index = SourceIndex(Failing(tmp_path))
    for day in (1, 2):
        with pytest.raises(StorageError, match="cannot list 2021-03: SlowDown"):
            index.objects(dt.date(2021, 3, day))
    assert calls == ["2021-03"]


def test_dates_without_a_folder_cost_no_listing_while_the_folder_listing_is_fresh(bucket):
    """After folders(), a date without a folder (the look-back of the first date into a month
    before the data) has no objects without a month listing; once the folder listing is
    older than max_age, the month is listed again (a folder may have arrived)."""
    client, store = bucket
    now = [100.0]
    counting = CountingStore(store)
    index = SourceIndex(counting, max_age=60, clock=lambda: now[0])
    index.folders(dt.date(2021, 3, 1), dt.date(2021, 3, 7))
    listed = sorted(counting.prefixes)
    assert not index.objects(dt.date(2021, 1, 20))  # January: no folder
    assert not index.objects(dt.date(2021, 3, 2))  # a March date without a folder
    assert sorted(counting.prefixes) == listed
    assert index.objects(dt.date(2021, 3, 1)) == expected_objects("2021-03-01")
    client.put_object(Bucket="xetra-index", Key="src/2021-01-20/2021-01-20_BINS_XETR09.csv",
                      Body=b"late")
    now[0] += 61
    assert index.objects(dt.date(2021, 1, 20)) == [
        ObjectInfo("2021-01-20/2021-01-20_BINS_XETR09.csv", 4)]
    assert counting.prefixes[-1] == "2021-01"

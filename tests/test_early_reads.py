"""The first dates are read while the run takes its lock; what the claim hands out decides."""
import datetime as dt

from testkit.localetl import make_etl, report_of
from testkit.sourcedata import bar, write_day
from xetra.meta import MetaEntry, MetaProcess
from xetra.storage import LocalStorage

D = dt.date
MON, TUE, WED = D(2021, 5, 10), D(2021, 5, 11), D(2021, 5, 12)
SAP = "DE0007164600"


def three_days(source):
    """SAP closes 100 on Monday, 110 on Tuesday, 99 on Wednesday."""
    write_day(source, MON, [bar(SAP, "09:00", 90.0, 100.0, 1)])
    write_day(source, TUE, [bar(SAP, "09:00", 100.0, 110.0, 2)])
    write_day(source, WED, [bar(SAP, "09:00", 110.0, 99.0, 3)])


def test_a_date_another_run_records_before_the_lock_is_not_processed(tmp_path, pool):
    folders = tmp_path / "source", tmp_path / "target"
    three_days(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-10")
    claim = etl.control.claim
    other = MetaProcess(LocalStorage(folders[1]), etl.config.meta)

    def another_run_got_monday_first(*args, **kwargs):
        # Between the run's first meta read (Monday pending, read early) and its lock.
        other.record([MetaEntry(MON, "2021-05-13T06:00:00+00:00", "elsewhere.parquet", "1")])
        return claim(*args, **kwargs)

    etl.control.claim = another_run_got_monday_first
    summary = etl.etl_report1(MON, WED)
    assert summary.processed == [TUE, WED]
    assert not (folders[1] / "report1" / f"xetra_report1_{MON}.parquet").exists()
    assert MetaProcess(LocalStorage(folders[1]), etl.config.meta).load().entries[MON] \
        .report_key == "elsewhere.parquet"
    # Tuesday, read early too, is reported as usual: +10 % on Monday's close.
    assert [(row["isin"], row["closing_price_eur"], row["change_prev_closing_%"])
            for row in report_of(folders[1], TUE)] == [(SAP, 110.0, 10.0)]
    # Wednesday: 99 against 110 = -10 %.
    assert report_of(folders[1], WED)[0]["change_prev_closing_%"] == -10.0


def test_every_date_is_read_once_with_the_early_reads(tmp_path, pool):
    folders = tmp_path / "source", tmp_path / "target"
    three_days(folders[0])
    etl = make_etl(folders, pool, first_date="2021-05-10")
    extracted = []
    extract = etl.extract

    def counting_extract(day):
        extracted.append(day)
        return extract(day)

    etl.extract = counting_extract
    summary = etl.etl_report1(MON, WED)
    assert summary.processed == [MON, TUE, WED]
    # (the look-back also reads the ten days before Monday, which hold no folders here)
    assert sorted(day for day in extracted if day >= MON) == [MON, TUE, WED]

"""JobControl.discard_unrecorded for several dates at once (a commit group whose meta update
failed): each written report object is removed unless a fresh read of the meta file lists its
date, one failed removal does not stop the others, and an unreadable meta file removes nothing.
On a LocalStorage in a temporary folder."""
import datetime as dt
import logging

import pytest

from testkit.localetl import make_etl
from testkit.sourcedata import bar, write_day
from xetra.errors import StorageError
from xetra.meta import MetaEntry
from xetra.storage import LocalStorage

D = dt.date
MONDAY, TUESDAY = D(2021, 5, 10), D(2021, 5, 11)
LATER = [D(2021, 5, 20), D(2021, 5, 21), D(2021, 5, 24)]
SAP = "DE0007164600"


def key(day):
    """A report object's key (as the job names them)."""
    return f"report1/xetra_report1_{day}.parquet"


@pytest.fixture(name="control")
def control_fixture(tmp_path, pool):
    """A JobControl whose meta file lists Monday and Tuesday, and report objects of three
    later dates the meta file does not list."""
    source = tmp_path / "source"
    write_day(source, MONDAY, [bar(SAP, "09:00", 99.0, 100.0, 1)])
    write_day(source, TUESDAY, [bar(SAP, "09:00", 100.0, 101.0, 2)])
    etl = make_etl((source, tmp_path / "target"), pool, first_date=str(MONDAY))
    assert etl.etl_report1(MONDAY, TUESDAY).processed == [MONDAY, TUESDAY]
    for day in LATER:
        etl.control.target.put_bytes(key(day), b"written, not recorded")
    return etl.control


def report_keys(control):
    """The report objects in the target."""
    return [info.key for info in control.target.list_objects("report1/")]


def test_only_the_unlisted_dates_objects_go(control, caplog):
    with caplog.at_level(logging.WARNING, logger="xetra.jobcontrol"):
        control.discard_unrecorded([(MONDAY, key(MONDAY)), (LATER[0], key(LATER[0])),
                                    (LATER[1], ""), (LATER[2], key(LATER[2]))])
    assert report_keys(control) == [key(MONDAY), key(TUESDAY), key(LATER[1])]
    root = control.target.describe()
    assert [record.getMessage() for record in caplog.records] == [
        f"removing report object {root}/{key(day)}: its date could not be recorded"
        for day in (LATER[0], LATER[2])]


def test_a_failed_removal_does_not_stop_the_others(control, caplog, monkeypatch):
    delete = LocalStorage.delete

    def refuse_first(store, name, **condition):
        if name == key(LATER[0]):
            raise StorageError(f"cannot delete {store.describe(name)}: permission denied")
        delete(store, name, **condition)

    monkeypatch.setattr(LocalStorage, "delete", refuse_first)
    with caplog.at_level(logging.WARNING, logger="xetra.jobcontrol"):
        control.discard_unrecorded([(day, key(day)) for day in LATER])
    assert report_keys(control) == [key(MONDAY), key(TUESDAY), key(LATER[0])]
    path = f"{control.target.describe()}/{key(LATER[0])}"
    assert f"could not remove {path} (cannot delete {path}: permission denied); the next run " \
        f"that processes {LATER[0]} replaces it" in caplog.text


def test_an_unreadable_meta_file_removes_nothing_and_names_each_object(control, caplog,
                                                                        monkeypatch):
    def unreadable():
        raise StorageError("cannot read the meta file: timeout")

    monkeypatch.setattr(control.meta, "load", unreadable)
    with caplog.at_level(logging.WARNING, logger="xetra.jobcontrol"):
        control.discard_unrecorded([(day, key(day)) for day in LATER[:2]] + [(TUESDAY, "")])
    assert report_keys(control) == [key(MONDAY), key(TUESDAY), *(key(day) for day in LATER)]
    root = control.target.describe()
    assert [record.getMessage() for record in caplog.records] == [
        f"could not remove {root}/{key(day)} (cannot read the meta file: timeout); the next run "
        f"that processes {day} replaces it" for day in LATER[:2]]


def test_nothing_written_reads_nothing(control, monkeypatch):
    def unexpected():
        raise AssertionError("the meta file is read although no object is to be removed")

    monkeypatch.setattr(control.meta, "load", unexpected)
    control.discard_unrecorded([])
    control.discard_unrecorded([(LATER[0], ""), (LATER[1], "")])
    assert len(report_keys(control)) == 5


UNLISTED = ("3 report object(s) of dates the meta file does not list (2021-05-20..2021-05-21 "
            "(2 dates), 2021-05-24): left as they are; a run that processes such a date replaces "
            "its object, and one that is not this job's is removed by hand (docs/CONTRACT.md, "
            "\"Report objects the meta file does not list\")")


@pytest.mark.parametrize("last, pending", [(TUESDAY, []), (D(2021, 5, 12), [D(2021, 5, 12)])])
def test_a_claim_names_the_unlisted_report_objects_once(control, caplog, last, pending):
    """With nothing to do (no lock) and with a date to do (read under the lock): one warning,
    the three later dates written out in full, and the claim knows them."""
    with caplog.at_level(logging.WARNING, logger="xetra.jobcontrol"):
        with control.claim(MONDAY, last) as claim:
            assert claim.dates == pending
            if pending:
                assert claim.unlisted == set(LATER)
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", UNLISTED)]


def test_record_one_date_and_its_failure(control, monkeypatch):
    """record_group of one date: it is listed with its report key; when the meta update fails, a new
    date's object is removed, a recomputed date's object stays for the next run."""
    control.record_group([MetaEntry(LATER[0], "2021-05-21T06:00:00", report_key=key(LATER[0]))])
    listed = control.meta.load().entries
    assert sorted(listed) == [MONDAY, TUESDAY, LATER[0]]
    assert listed[LATER[0]].report_key == key(LATER[0])

    def failing(entries):
        raise StorageError(f"cannot write the meta file ({len(entries)} entries)")

    monkeypatch.setattr(control.meta, "record", failing)
    with pytest.raises(StorageError, match=r"\(1 entries\)"):
        control.record_group([MetaEntry(LATER[1], "2021-05-22T06:00:00",
                                        report_key=key(LATER[1]))], recompute=True)
    with pytest.raises(StorageError, match=r"\(1 entries\)"):
        control.record_group([MetaEntry(LATER[2], "2021-05-25T06:00:00",
                                        report_key=key(LATER[2]))])
    assert report_keys(control) == [key(MONDAY), key(TUESDAY), key(LATER[0]), key(LATER[1])]

"""No credential in any output or written object; keys only from dates and config; local
keys and prefixes cannot escape the configured folder."""
from __future__ import annotations

import pytest

from testkit.faultproxy import Fault, FaultProxy
from testkit.jobs import Job
from testkit.s3servers import ACCESS_KEY, SECRET_KEY
from testkit.targets import META_KEY, Folder, fill, new_bucket
from testkit.threedays import D1, D2, D3, assert_converged, three_days
from xetra.errors import StorageError
from xetra.storage import LocalStorage


@pytest.mark.s3server
def test_no_credential_in_logs_errors_reports_or_meta(tmp_path, seaweed):
    """Runs on SeaweedFS (which checks SigV4 signatures with the fake keys): a good run, a
    run failing on a throttled object, a run stopped by a bad object, a locked run and a
    run with every logger but botocore at DEBUG. Neither key appears in stdout, stderr, the log file
    or any object of the target bucket."""
    source = new_bucket(seaweed, "src")
    fill(source, three_days())
    target = new_bucket(seaweed, "tgt")
    outputs = []
    with FaultProxy(seaweed.endpoint_url) as proxy:
        job = Job(tmp_path, source, target, proxy.endpoint_url, env=seaweed.env())
        job.config["logging"]["root"]["level"] = "DEBUG"  # botocore itself stays at WARNING
        job.write()
        outputs.append(job.run_process("--to", D1))
        assert outputs[-1].code == 0, outputs[-1]
        proxy.inject(Fault("GET", "slowdown", f"{D2}_BINS_XETR09", times=None))
        outputs.append(job.run_process("--to", D3))
        assert outputs[-1].code == 1, outputs[-1]
        proxy.clear()
        source.put(f"{D2}/{D2}_BINS_XETR11.csv", b"\x1f\x8b not really gzip")
        outputs.append(job.run_process("--to", D3))
        assert outputs[-1].code == 1, outputs[-1]
        source.client.delete_object(Bucket=source.name, Key=f"{D2}/{D2}_BINS_XETR11.csv")
        target.put("meta/report1/xetra_report1.lock",
                   b'{"owner": "elsewhere:1:abc", "expires_at": "2999-01-01T00:00:00+00:00"}')
        outputs.append(job.run_process("--to", D3))
        assert outputs[-1].code == 3, outputs[-1]
        target.client.delete_object(Bucket=target.name, Key="meta/report1/xetra_report1.lock")
        outputs.append(job.run_process("--to", D3))
        assert outputs[-1].code == 0, outputs[-1]
    assert_converged(target, [D1, D2, D3])
    texts = [text for result in outputs for text in (result.out, result.err)]
    texts.append(job.log_file.read_text())
    assert "DEBUG" in texts[-1]  # the debug lines were there to be searched
    for text in texts:
        assert ACCESS_KEY not in text and SECRET_KEY not in text
    for key, data in target.objects().items():
        for secret in (ACCESS_KEY, SECRET_KEY):
            assert secret.encode() not in data, key
            assert secret not in key


def test_written_keys_come_from_dates_and_config_only(tmp_path):
    """Hostile values in the source (an ISIN and a description with '../', an extra nested
    object) change no key: exactly the report keys of the dates and the meta key."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    source.put(f"{D1}/{D1}_BINS_XETR12.csv",
               three_days()[f"{D1}/{D1}_BINS_XETR08.csv"] +
               f"../../etc,MNE,../../x,CS,EUR,1,{D1},12:00,1,1,1,1,5,1\n".encode())
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 0
    assert "invalid=1" in result.summary
    assert_converged(job.target, [D1, D2, D3])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "job.log", "job.yml", "source", "target"]


@pytest.mark.parametrize("dotted, value, message", [
    ("report.prefix", "../escape/", "report.prefix: must be a relative key without '..'"),
    ("report.prefix", "/tmp/escape/", "report.prefix: must be a relative key without '..'"),
    ("meta.key", "/tmp/xetra_meta.csv", "meta.key: must be a relative key without '..'"),
    ("meta.key", "meta/../../outside.csv", "meta.key: must be a relative key without '..'"),
    ("meta.lock_key", "../x.lock", "meta.lock_key: must be a relative key without '..'"),
])
def test_prefix_or_key_escaping_the_root_is_rejected(local_job, dotted, value, message):
    """Exit 2 naming the setting; nothing written anywhere."""
    section, key = dotted.split(".")
    local_job.config.setdefault(section, {})[key] = value
    local_job.write()
    result = local_job.run("--to", D3)
    assert result.code == 2
    assert result.err.startswith(f"xetra: configuration error: {message}")
    assert not local_job.target.root.exists()


def test_local_store_refuses_keys_outside_its_root(tmp_path):
    """'..', absolute keys and a symlink leading out of the root are all refused."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalStorage(root, create=True)
    store.check_access()
    for key in ("../outside/x", "/etc/passwd", "a/../../outside/x"):
        with pytest.raises(StorageError, match="escapes the folder"):
            store.put_bytes(key, b"x")
        with pytest.raises(StorageError, match="escapes the folder"):
            store.get_bytes(key)
    (root / "report1").symlink_to(outside)
    with pytest.raises(StorageError, match="escapes the folder"):
        store.put_bytes("report1/xetra_report1_2017-06-26.parquet", b"x")
    assert not list(outside.iterdir())


def test_symlinked_report_folder_stops_the_run(tmp_path):
    """A report prefix that is a symlink out of the target folder: exit 1, nothing outside."""
    source = Folder(tmp_path / "source")
    fill(source, three_days())
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "report1").symlink_to(outside)
    job = Job(tmp_path, source, Folder(tmp_path / "target"))
    result = job.run("--to", D3)
    assert result.code == 1
    assert "escapes the folder" in result.err
    assert not list(outside.iterdir())
    assert META_KEY not in job.target.objects()

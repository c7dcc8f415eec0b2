"""Meta file contention: K processes record M dates each into one meta file at the same time.

Starts a real S3 server on 127.0.0.1 (SeaweedFS or moto, from testkit/s3servers.py) or uses a
local folder, runs K writer processes that call MetaProcess.record once per date as fast as
they can (testkit/contention.py), and prints, per round, the updates, the 412 conflicts and
the seconds spent per update, and whether the meta file lists each of the K*M dates exactly
once.

    pipenv run python -m benchmarks.meta_contention --store seaweedfs --writers 4 --dates 20
"""
from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import nullcontext

from testkit.contention import run
from testkit.s3servers import moto_server, seaweedfs


def main() -> None:
    """Command line: which store, how many writers and dates, how many rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["seaweedfs", "moto", "local"], default="seaweedfs")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--dates", type=int, default=20, help="dates per writer")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    servers = {"seaweedfs": seaweedfs, "moto": moto_server}
    with servers[options.store]() if options.store in servers else nullcontext() as server:
        if server:
            os.environ.update(server.env())
        for writers in options.writers:
            for round_number in range(options.rounds):
                if server:
                    bucket = f"meta-{writers}-{round_number}"
                    server.client().create_bucket(Bucket=bucket)
                    url = f"s3://{bucket}/"
                else:
                    url = tempfile.mkdtemp(prefix="xetra-meta-")
                figures = run(url, server.endpoint_url if server else None, writers,
                              options.dates)
                print(f"{options.store} writers={writers} round={round_number} "
                      f"updates={figures['updates']} conflicts_412={figures['conflicts']} "
                      f"conflicts_per_update={figures['conflicts'] / figures['updates']:.2f} "
                      f"s_per_update={figures['seconds_per_update']:.3f} "
                      f"max_update_s={figures['max_update_seconds']:.2f} "
                      f"updates_per_s={figures['updates'] / figures['wall']:.1f} "
                      f"exact={figures['exact']} listed={figures['listed']}", flush=True)

if __name__ == "__main__":
    main()

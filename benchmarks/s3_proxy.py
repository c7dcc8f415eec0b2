"""A TCP proxy on 127.0.0.1 that makes a local S3 server look remote: a round-trip delay on
every request and a bandwidth cap on every connection.

    python -m benchmarks.s3_proxy --upstream 127.0.0.1:8333 --delay-ms 30 --mbps 40 [--port P]

Each direction of each connection is a delay line of half the round trip: a chunk read at t
is written at t + delay/2, at the earliest (chunks keep their order and do not wait for each
other's delay, as packets in flight do not), so a request and its answer cost one round trip
more than directly; opening a connection costs one round trip too (the TCP handshake). The
server-to-client direction is paced to `mbps` megabytes per second per connection. Loopback
only: it binds 127.0.0.1 and connects only to the upstream given.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
METHODS = (b"GET ", b"PUT ", b"HEAD ", b"POST ", b"DELETE ")
QUEUED_CHUNKS = 32  # per direction: about 2 MB in flight, like a TCP window


@dataclass
class ProxyStats:
    """What went through the proxy: connections accepted and bytes each way."""

    connections: int = 0
    upstream_bytes: int = 0
    downstream_bytes: int = 0
    requests: list[tuple[float, str]] = field(default_factory=list)  # (time, request line)


class LatencyProxy:
    """The proxy's event loop and server, run in a thread of its own (see `running`)."""

    def __init__(self, upstream: tuple[str, int], delay_ms: float = 30.0, mbps: float = 40.0):
        self.upstream = upstream
        self.half_delay = delay_ms / 2000.0
        self.bytes_per_second = mbps * 1e6 if mbps > 0 else 0.0
        self.stats = ProxyStats()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()  # strong references: the loop keeps weak ones
        self._server: asyncio.base_events.Server | None = None

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    paced: bool, counter: str) -> None:
        """Copy `reader` to `writer` through a delay line (and pacing when `paced`)."""
        queue: asyncio.Queue = asyncio.Queue(QUEUED_CHUNKS)

        async def receive() -> None:
            try:
                while True:
                    data = await reader.read(CHUNK)
                    if not paced and data.startswith(METHODS):
                        line = data.split(b"\r\n", 1)[0].decode("latin-1")
                        self.stats.requests.append((time.monotonic(), line))
                    await queue.put((time.monotonic(), data))
                    if not data:
                        return
            except (ConnectionError, asyncio.IncompleteReadError):
                await queue.put((time.monotonic(), b""))

        receiving = asyncio.ensure_future(receive())
        self._tasks.add(receiving)
        receiving.add_done_callback(self._tasks.discard)
        free_at = 0.0
        try:
            while True:
                arrived, data = await queue.get()
                if not data:
                    break
                send_at = max(arrived + self.half_delay, free_at)
                wait = send_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                if paced and self.bytes_per_second:
                    free_at = max(send_at, time.monotonic()) + len(data) / self.bytes_per_second
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            receiving.cancel()

    async def _handle(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        handling = asyncio.current_task()
        if handling is not None:
            self._tasks.add(handling)
            handling.add_done_callback(self._tasks.discard)
        try:
            await asyncio.sleep(2 * self.half_delay)  # the handshake's round trip
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            logger.warning("cannot reach upstream %s:%d: %s", *self.upstream, exc)
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self._pump(client_reader, server_writer, False, "upstream_bytes"),
                self._pump(server_reader, client_writer, True, "downstream_bytes"))
        except asyncio.CancelledError:
            pass
        finally:
            for writer in (server_writer, client_writer):
                writer.close()

    async def _start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    @contextmanager
    def running(self, port: int = 0) -> Iterator[str]:
        """Serve on 127.0.0.1:`port` (0: any free port) in a background thread; yields the
        endpoint URL and stops the server on exit."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start(port))
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="s3-latency-proxy", daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            async def stop() -> None:
                if self._server is not None:
                    self._server.close()
                tasks = [task for task in asyncio.all_tasks()
                         if task is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def upstream_of(endpoint_url: str) -> tuple[str, int]:
    """(host, port) of an http://HOST:PORT endpoint; only loopback hosts are accepted."""
    host, _, port = endpoint_url.split("://", 1)[-1].rstrip("/").partition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the proxy only forwards to loopback, not {host}")
    return host, int(port or 80)


@contextmanager
def latency_proxy(endpoint_url: str, delay_ms: float = 30.0,
                  mbps: float = 40.0) -> Iterator[tuple[str, LatencyProxy]]:
    """A running proxy in front of `endpoint_url`: yields its own endpoint URL and itself."""
    proxy = LatencyProxy(upstream_of(endpoint_url), delay_ms, mbps)
    with proxy.running() as url:
        yield url, proxy


def main(argv: list[str] | None = None) -> None:
    """Command line: run the proxy until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--delay-ms", type=float, default=30.0)
    parser.add_argument("--mbps", type=float, default=40.0, help="MB/s per connection (0: none)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    proxy = LatencyProxy(upstream_of("http://" + args.upstream), args.delay_ms, args.mbps)
    with proxy.running(args.port) as url:
        logger.info("proxy on %s -> %s, %.0f ms, %.0f MB/s", url, args.upstream,
                    args.delay_ms, args.mbps)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

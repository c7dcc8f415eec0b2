"""A small fault-injecting HTTP proxy on 127.0.0.1 in front of a real S3 server, for tests.

The job is pointed at the proxy's endpoint; every request is forwarded to the server unchanged
(same Host header, so SigV4 signatures stay valid), except requests matching a `Fault` rule,
which get a 503 SlowDown, a 500, a reset connection or no answer until the client times out.
"""
from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (503, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                  b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (500, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>"
                 b"<Message>We encountered an internal error. Please try again.</Message>"
                 b"</Error>")
KINDS = ("slowdown", "internal", "reset", "timeout")


def operation(method: str, path: str) -> str:
    """The S3 operation of a path-style request: LIST, GET, PUT, HEAD, DELETE or OTHER."""
    parts = urlsplit(path)
    has_key = "/" in parts.path.strip("/")
    if method == "GET":
        return "GET" if has_key else "LIST"
    if method in ("PUT", "HEAD", "DELETE"):
        return method
    return "OTHER"


@dataclass
class Fault:
    """Fail requests of `op` whose path contains `path_contains`: the first `times` of them,
    or every one when `times` is None (a fault that persists)."""

    op: str
    kind: str
    path_contains: str = ""
    times: int | None = 1
    hits: int = 0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def take(self, op: str, path: str) -> bool:
        """True (and counted) when this request is to fail."""
        if op != self.op or self.path_contains not in path:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        self.seen.append(path)
        return True


class FaultProxy:
    """The proxy: `with FaultProxy(upstream) as proxy`, then `proxy.endpoint_url`."""

    def __init__(self, upstream_url: str, hang_seconds: float = 3.0):
        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname, upstream.port)
        self.hang_seconds = hang_seconds
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        """The URL to give the job as endpoint_url."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, fault: Fault) -> Fault:
        """Add a fault rule; returns it so the test can read its hit count."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault rule and forget the requests seen."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _fault_for(self, method: str, path: str) -> Fault | None:
        op = operation(method, path)
        with self._lock:
            self.requests.append((op, path))
            for fault in self.faults:
                if fault.take(op, path):
                    return fault
        return None

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            """Forwards one request, or fails it as a fault rule says."""

            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                """Quiet: tests read `proxy.requests` instead."""

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if size == 0:
                            break
                        chunks.append(chunk)
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _fail(self, fault: Fault) -> None:
                if fault.kind == "reset":
                    # SO_LINGER 0 makes close() send RST: the client sees a connection reset.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault.kind == "timeout":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    return
                status, body = SLOW_DOWN if fault.kind == "slowdown" else INTERNAL
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("transfer-encoding", "connection")}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                try:
                    upstream.request(self.command, self.path, body=body or None,
                                     headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection",
                                            "content-length"):
                        self.send_header(name, value)
                # A HEAD answer keeps the object's length; its body is empty anyway.
                self.send_header("Content-Length", response.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._fault_for(self.command, self.path)  # pylint: disable=protected-access
                if fault is not None:
                    self._fail(fault)
                else:
                    self._forward(body)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

        return Handler

"""A stand-in for the Lambda Runtime API on 127.0.0.1, for driving `awslambdaric` in tests.

It serves the documented endpoints a runtime client uses
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
GET  /2018-06-01/runtime/invocation/next           the next event, with the context headers
POST /2018-06-01/runtime/invocation/{id}/response  the handler's result
POST /2018-06-01/runtime/invocation/{id}/error     the handler's error
POST /2018-06-01/runtime/init/error                an error before the first invocation
Each queued event is handed out once; afterwards `next` blocks until the stand-in stops.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:xetra-report1"


@dataclass
class Answer:
    """What the runtime client posted for one invocation."""

    kind: str                  # "response" or "error"
    body: Any
    error_type: str | None = None
    seconds: float = 0.0       # from handing out the event to the answer


@dataclass
class RuntimeApiStandIn:  # pylint: disable=too-many-instance-attributes
    """The Runtime API for a queue of events; answers are kept by request id, in order."""

    events: list[Any]
    timeout_ms: int = 900_000
    answers: dict[str, Answer] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    init_errors: list[Any] = field(default_factory=list)
    first_next_at: float | None = None
    _handed_out: dict[str, float] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _all_answered: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        """host:port, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> "RuntimeApiStandIn":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            """One request of the runtime client."""

            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                """Quiet: the test reports what matters."""

            def _reply(self, status: int, body: bytes = b"", headers=None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was stopped while it waited for the next event

            def do_GET(self):  # pylint: disable=invalid-name
                """The next invocation, or a wait until the stand-in stops."""
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404)
                    return
                event = stand_in.next_event()
                if event is None:
                    self._reply(500, b'{"errorMessage": "stand-in stopped"}')
                    return
                request_id, body = event
                self._reply(200, body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) +
                                                      stand_in.timeout_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-x"})

            def do_POST(self):  # pylint: disable=invalid-name
                """A result, an invocation error or an init error."""
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts == ["init", "error"]:
                    stand_in.init_errors.append(body)
                elif len(parts) == 3 and parts[0] == "invocation" and \
                        parts[2] in ("response", "error"):
                    stand_in.record(parts[1], Answer(
                        parts[2], body, self.headers.get("Lambda-Runtime-Function-Error-Type")))
                else:
                    self._reply(404)
                    return
                self._reply(202, b'{"status": "OK"}', {"Content-Type": "application/json"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def next_event(self) -> tuple[str, bytes] | None:
        """(request id, JSON body) of the next queued event; None once stopped."""
        with self._lock:
            if self.first_next_at is None:
                self.first_next_at = time.monotonic()
            if self.events:
                request_id = str(uuid.uuid4())
                self.order.append(request_id)
                self._handed_out[request_id] = time.monotonic()
                return request_id, json.dumps(self.events.pop(0)).encode()
        self._stopping.wait()
        return None

    def record(self, request_id: str, answer: Answer) -> None:
        """Keep an answer; note when every event has one."""
        with self._lock:
            answer.seconds = time.monotonic() - self._handed_out.get(request_id,
                                                                     time.monotonic())
            self.answers[request_id] = answer
            if not self.events and len(self.answers) == len(self.order):
                self._all_answered.set()

    def wait_for_answers(self, seconds: float) -> bool:
        """True once every queued event has been answered (within `seconds`)."""
        return self._all_answered.wait(seconds)

    def answers_in_order(self) -> list[Answer]:
        """The answers in the order the events were handed out."""
        return [self.answers[request_id] for request_id in self.order
                if request_id in self.answers]

"""A deliberately unreliable HTTP proxy on loopback, in front of the GCS emulator.

Every `period`-th request (a fixed, deterministic share) fails instead of being forwarded: in turn a
503 Service Unavailable and a dropped connection (the socket closed with no response at all). The rest
go to the upstream server unchanged; `Location` headers (resumable uploads) are rewritten to point
back at the proxy. The proxy is bounded: it serves at most `max_requests` requests and shuts itself
down after `lifetime_s` seconds, so a test that forgets it cannot leave it running. `outage_when` takes
the store away altogether for a while: every request's connection dropped, as a server that died would.
"""
from __future__ import annotations

import collections
import http.client
import http.server
import json
import threading
import time
import urllib.parse
from typing import Any, Callable

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class FlakyProxy:
    """Use as a context manager; `url` is what STORAGE_EMULATOR_HOST should point at."""

    def __init__(self, upstream_port: int, period: int = 5, lifetime_s: float = 300.0,
                 max_requests: int = 20000):
        self.upstream = ("127.0.0.1", upstream_port)
        self.period, self.lifetime_s, self.max_requests = period, lifetime_s, max_requests
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._count = 0
        self._down_until = 0.0
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> "FlakyProxy":
        threading.Thread(target=self._server.serve_forever, daemon=True, name="flaky-proxy").start()
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def outage_when(self, condition: Callable[[], bool], seconds: float, timeout_s: float = 120.0) -> None:
        """Poll `condition` (which should not go through the proxy) until it holds, then refuse everything
        for `seconds`."""
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._down_until = time.monotonic() + seconds

    def upstream_names(self, prefix: str) -> list[str]:
        """Object names under `prefix` in the bucket, asked of the server directly, past the proxy."""
        connection = http.client.HTTPConnection(*self.upstream, timeout=10)
        connection.request("GET", f"/storage/v1/b/bucket/o?prefix={urllib.parse.quote(prefix)}")
        items = json.loads(connection.getresponse().read() or b"{}").get("items", [])
        connection.close()
        return [item["name"] for item in items]

    def verdict(self) -> str:
        """What to do with the next request: `down` in an outage, else `forward`, `503` or `drop`
        (deterministic in its index)."""
        if time.monotonic() < self._down_until:
            return "down"
        with self._lock:
            self._count += 1
            index = self._count
        if index > self.max_requests:
            return "503"  # past its budget the proxy only refuses, so a runaway client cannot spin forever
        if self.period and index % self.period == 0:
            return "503" if (index // self.period) % 2 else "drop"
        return "forward"


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients resetting kept-alive connections after a drop is the point, not news


def _handler(proxy: FlakyProxy) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: the tests report the counts instead
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            verdict = proxy.verdict()
            proxy.outcomes[verdict] += 1
            if verdict in ("drop", "down"):
                self.close_connection = True
                self.connection.close()
                return
            if verdict == "503":
                payload = b'{"error": {"code": 503, "message": "flaky proxy: try again"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_HEADERS}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() in HOP_HEADERS or key.lower() == "content-length":
                    continue
                if key.lower() == "location":
                    value = value.replace(f"{proxy.upstream[0]}:{proxy.upstream[1]}", f"127.0.0.1:{proxy.port}")
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

    return Handler

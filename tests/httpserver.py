"""A tiny HTTP file server on 127.0.0.1 for offline download tests.

Serves in-memory bytes from a daemon thread and can misbehave on purpose: ignore ``Range`` headers, omit
``Content-Length``, cut the connection after K body bytes for the next M requests (what a flaky link does to
a multi-GB download), go quiet mid-body (``stall``) or announce a wrong range (``range_shift``). Every request
is logged so tests can assert what the client asked for and got.

    with LocalFileServer() as server:
        url = server.add("data.tar.gz", payload)
        server.cut_connection(after=1000)  # the next response stops after 1000 body bytes
        ...
        assert server.requests[-1] == ("/data.tar.gz", "bytes=1000-")
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self needs Python 3.11; annotations are never evaluated at runtime here
    from typing import Self

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class LocalFileServer:
    """In-memory files over HTTP on 127.0.0.1 (ephemeral port); use as a context manager or start()/stop()."""

    def __init__(self, *, range_support: bool = True, content_length: bool = True) -> None:
        self.range_support = range_support  # False: answer every GET with 200 and the whole file
        self.content_length = content_length  # False: no Content-Length; the body ends when the connection does
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header) per request, in order
        self.body_bytes_sent: list[int] = []  # body bytes actually sent per request, same order
        self.user_agents: list[str | None] = []  # the User-Agent header per request, same order
        self._files: dict[str, bytes] = {}
        self._cut_after = 0
        self._cuts_left = 0
        self.range_shift = 0  # added to the start a 206's Content-Range announces (a server that misreports it)
        self.stall: tuple[int, float] | None = None  # (after K body bytes, pause S seconds) for every response
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- setup -----------------------------------------------------------------------------------------------

    def add(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; return its URL (server must be started)."""
        self._files["/" + path.lstrip("/")] = bytes(data)
        return self.url(path)

    def url(self, path: str) -> str:
        if self._httpd is None:
            raise RuntimeError("LocalFileServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_port}/{path.lstrip('/')}"

    def cut_connection(self, after: int, times: int = 1) -> None:
        """Close the connection after ``after`` body bytes for the next ``times`` 200/206 responses."""
        with self._lock:
            self._cut_after, self._cuts_left = after, times

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- used by the handler thread --------------------------------------------------------------------------

    def _respond(self, path: str, range_header: str | None) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and full body for one GET (before any simulated cut)."""
        data = self._files.get(path)
        if data is None:
            return 404, {"Content-Length": "0"}, b""
        match = _RANGE.fullmatch(range_header.strip()) if range_header and self.range_support else None
        if match is None:
            return 200, self._length_header(len(data)), data
        start = int(match.group(1))
        end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
        if start >= len(data) or start > end:
            return 416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"}, b""
        headers = {"Content-Range": f"bytes {start + self.range_shift}-{end}/{len(data)}",
                   **self._length_header(end + 1 - start)}
        return 206, headers, data[start : end + 1]

    def _length_header(self, n: int) -> dict[str, str]:
        return {"Content-Length": str(n)} if self.content_length else {}

    def _take_cut(self) -> int | None:
        with self._lock:
            if self._cuts_left <= 0:
                return None
            self._cuts_left -= 1
            return self._cut_after


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalFileServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: clients hanging up mid-body is exactly what some tests provoke."""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, and without Content-Length the body ends at close.
    protocol_version = "HTTP/1.0"
    server: _Server

    def do_GET(self) -> None:  # name fixed by BaseHTTPRequestHandler
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        range_header = self.headers.get("Range")
        status, headers, body = owner._respond(path, range_header)
        if status in (200, 206):
            cut = owner._take_cut()
            if cut is not None:
                body = body[:cut]  # the headers still announce the full length: a genuine mid-body cut
        with owner._lock:  # logged before sending, so it is complete by the time the client returns
            owner.requests.append((path, range_header))
            owner.user_agents.append(self.headers.get("User-Agent"))
            owner.body_bytes_sent.append(len(body))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if owner.stall is not None:  # a link that goes quiet mid-body: the client's read times out
            after, seconds = owner.stall
            self.wfile.write(body[:after])
            self.wfile.flush()
            time.sleep(seconds)
            body = body[after:]
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # signature fixed by the base class
        """No access log on stderr."""

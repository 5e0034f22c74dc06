"""The explorer's HTTP server: a JSON API over the runs and the page that shows them."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from emovlm.errors import InputError
from emovlm.view import DEFAULT_HOST
from emovlm.view.compare import Comparison, changed_samples, compare_runs
from emovlm.view.index import FILTERS, PAGE_SIZE, RunIndex
from emovlm.view.media import MediaFinder
from emovlm.view.runs import Run, sample_detail, thumbnail
from emovlm.view.summary import run_summary

_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def asset(name: str) -> str:
    """The text of one of the page's files shipped in the package (index.html, app.js, app.css)."""
    return resources.files("emovlm.view").joinpath("static", name).read_text(encoding="utf-8")


class Explorer:
    """The runs being explored and the answers to the API's questions about them (cached)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        """Serve `runs` (from `open_runs`)."""
        self.runs = {run.id: run for run in runs}
        self._cache: dict[tuple, Any] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def run(self, query: Mapping[str, str], name: str = "run") -> Run:
        """The run a query parameter names."""
        run_id = query.get(name, "")
        if run_id not in self.runs:
            raise InputError(f"{name}={run_id!r} is not a run id; known: {', '.join(self.runs)}")
        return self.runs[run_id]

    def _cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The value stored under `key`, computed once (a second asker waits for the first)."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = compute()
            return self._cache[key]

    def warm(self) -> threading.Thread:
        """Build every run's summary and sample index in a background thread; return it."""

        def build() -> None:
            for run in self.runs.values():
                try:
                    self.index(run)
                    self.answer("summary", {"run": run.id})
                except InputError:
                    pass  # the request that needs it reports the problem

        thread = threading.Thread(target=build, name="emovlm-view-warm", daemon=True)
        thread.start()
        return thread

    def comparison(self, query: Mapping[str, str]) -> Comparison:
        """The (cached) comparison of the runs named by the ref and other parameters."""
        ref, other = self.index(self.run(query, "ref")), self.index(self.run(query, "other"))
        return self._cached(("compare", ref.run.id, other.run.id), lambda: compare_runs(ref, other))

    def media(self, run: Run) -> MediaFinder:
        """The run's (cached) media finder: its dataset reopened, if it is mounted."""
        return self._cached(("media", run.id), lambda: MediaFinder(run))

    def index(self, run: Run) -> RunIndex:
        """The run's (cached) sample index."""
        return self._cached(("index", run.id), lambda: RunIndex.build(run))

    def answer(self, path: str, query: Mapping[str, str]) -> Any:
        """The JSON answer of one API call (path below /api/)."""
        if path == "runs":
            return [run.describe() for run in self.runs.values()]
        if path == "summary":
            run = self.run(query)
            return self._cached(("summary", run.id), lambda: run_summary(run))
        if path == "samples":
            filters = {name: query[name] for name in FILTERS if query.get(name)}
            return self.index(self.run(query)).page(filters, *_paging(query))
        if path == "sample":
            return sample_detail(self.run(query), query.get("id", ""))
        if path == "frames":
            return self.media(self.run(query)).frames(query.get("id", ""))
        if path == "compare":
            return self.comparison(query).summary
        if path == "changes":
            return changed_samples(self.comparison(query), query.get("kind", ""), *_paging(query))
        raise LookupError(path)


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    """(offset, limit) from a query, with a clear error for non-numbers."""
    try:
        return int(query.get("offset", 0)), int(query.get("limit", PAGE_SIZE))
    except ValueError as exc:
        raise InputError(f"offset and limit must be whole numbers ({exc})") from exc


def to_json(value: Any) -> str:
    """JSON text of `value` with non-finite numbers (NaN, ±inf) written as null."""
    return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def make_handler(explorer: Explorer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one explorer."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "emovlm-view"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            """Answer a page, static file, API or thumbnail request."""
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in _ASSETS:
                    name, content_type = _ASSETS[url.path]
                    self._send(HTTPStatus.OK, asset(name).encode("utf-8"), content_type)
                elif url.path == "/api/thumb":
                    jpeg = thumbnail(explorer.run(query), query.get("id", ""), _index(query))
                    self._send(HTTPStatus.OK, jpeg, "image/jpeg")
                elif url.path == "/api/frame":
                    finder = explorer.media(explorer.run(query))
                    jpeg = finder.frame(query.get("id", ""), _index(query))
                    self._send(HTTPStatus.OK, jpeg, "image/jpeg")
                elif url.path.startswith("/api/"):
                    body = explorer.answer(url.path.removeprefix("/api/"), query)
                    self._json(HTTPStatus.OK, body)
                else:
                    raise LookupError(url.path)
            except InputError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except LookupError:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

        def _json(self, status: HTTPStatus, body: Any) -> None:
            self._send(status, to_json(body).encode("utf-8"), "application/json; charset=utf-8")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in _SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Stay quiet: the explorer does not log every request."""

    return Handler


def _index(query: Mapping[str, str]) -> int:
    try:
        return int(query.get("idx", 0))
    except ValueError as exc:
        raise InputError(f"idx must be a whole number ({exc})") from exc


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server; `warming` is the thread building indexes and summaries."""

    daemon_threads = True

    def __init__(self, explorer: Explorer, address: tuple[str, int]) -> None:
        """Bind to `address` and start warming the explorer's runs."""
        super().__init__(address, make_handler(explorer))
        self.explorer = explorer
        self.warming = explorer.warm()


def make_server(runs: Sequence[Run], host: str = DEFAULT_HOST, port: int = 0) -> ExplorerServer:
    """An HTTP server for `runs` bound to host:port (port 0 picks a free one), not yet serving.

    The runs' indexes and summaries start building in the background at once.
    """
    try:
        return ExplorerServer(Explorer(runs), (host, port))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc}); pick another --port") from exc

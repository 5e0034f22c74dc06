"""A lean JSON-over-HTTP client for OpenAI-compatible servers: one pooled aiohttp session.

It speaks the chat-completions wire format as plain dicts (no typed models) and sorts every
failure into three kinds the backend retries and reports on: `StatusError` (the server answered
4xx/5xx), `RequestTimeout` and `Unreachable` (refused, reset or dropped connections). A body
that is not a JSON object raises ValueError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp

_MESSAGE_CHARS = 500


class HTTPFailure(Exception):
    """A request that got no usable answer."""


class StatusError(HTTPFailure):
    """The server answered with an error status; `body` is its JSON (None if it sent none)."""

    def __init__(self, status: int, body: Any, text: str, retry_after: str | None) -> None:
        super().__init__(f"error {status}: {text[:_MESSAGE_CHARS]}")
        self.status, self.body, self.retry_after = status, body, retry_after


class Unreachable(HTTPFailure):
    """No answer: the connection was refused, reset or dropped."""


class RequestTimeout(Unreachable):
    """No answer within the timeout."""


class ChatHTTP:
    """POST and GET JSON against `base_url` with a bearer key, at most `limit` connections.

    The session is made on first use, on the event loop that uses it; `close` it there.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float, limit: int) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                headers=self._headers,
                timeout=self._timeout,
            )
        return self._session

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON object the server answers to `body` at `path`."""
        data = json.dumps(body, separators=(",", ":")).encode()
        return await self._request("POST", path, data)

    async def get(self, path: str) -> dict[str, Any]:
        """The JSON object the server answers at `path`."""
        return await self._request("GET", path, None)

    async def _request(self, method: str, path: str, data: bytes | None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._open().request(
                method, self._base + path, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError:  # aiohttp's timeouts are TimeoutError subclasses
            raise RequestTimeout("no answer within the timeout") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(" ".join(str(exc).split()) or type(exc).__name__) from None
        if status >= 400:
            raise StatusError(status, _json_or_none(raw), raw.decode(errors="replace"), retry_after)
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"the answer is a JSON {type(value).__name__}, not an object")
        return value

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ChatHTTP:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None

"""The `openai` VLM backend: any OpenAI-compatible chat server, async, bounded, retried, key-safe.

Works with vLLM, SGLang, Ollama, llama.cpp server and hosted APIs (OpenAI, Gemini's compatible
endpoint). Images go as base64 JPEG data URLs; a video's frames go as images in time order.
The API key is read from an environment variable and is scrubbed from every message we emit.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from emovlm.backends.images import jpeg_data_url
from emovlm.backends.top_logprobs import TokenStep, label_logprobs_from_top
from emovlm.backends.vlm import (
    GenerationSettings,
    Mode,
    VideoInput,
    VLMAnswer,
    VLMRequest,
)
from emovlm.errors import BackendError, InputError
from emovlm.types import Cost

T = TypeVar("T")
_RETRY_STATUS = {408, 409, 429}
_MAX_BACKOFF = 30.0
_MAX_RETRY_AFTER = 120.0
_KEY_LIKE = re.compile(r"\b(sk|rk|pk|key)[-_][A-Za-z0-9_*.\-]{4,}")
_CONTEXT = re.compile(r"context|too long|maximum.{0,20}length|too many tokens|exceeds", re.I)
_NO_VISION = re.compile(r"image|vision|multimodal|multi-modal", re.I)
_HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None
_PROBE_IMAGE = np.full((32, 32, 3), 128, dtype=np.uint8)


class MalformedResponseError(Exception):
    """The server answered with something that is not a chat completion."""


def run_blocking(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, also when an event loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


def _public_url(url: str) -> str:
    """The URL without user:password or query (either may hold a key), for fingerprints and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class OpenAIVLM:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    `concurrency` bounds requests in flight; each request is retried up to `max_retries` times
    on 408/409/429/5xx, timeouts and connection errors, with exponential backoff and full jitter
    (a Retry-After header is honoured). Score mode reads `top_logprobs`; a server that does not
    return them fails the preflight with a clear error.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        top_logprobs: int = 20,
        jpeg_quality: int = 90,
    ) -> None:
        if urlsplit(base_url).scheme not in {"http", "https"}:
            raise InputError(f"--base-url {base_url!r} must start with http:// or https://")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise InputError("--concurrency must be ≥ 1, retries ≥ 0 and the timeout > 0")
        self.model, self.base_url, self.api_key_env = model, base_url.rstrip("/"), api_key_env
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff, self.top_logprobs, self.jpeg_quality = backoff, top_logprobs, jpeg_quality
        self._checked: set[str] = set()

    @property
    def _key(self) -> str:
        return os.environ.get(self.api_key_env) or "not-set"

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            text = text.replace(key, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)

    def fingerprint(self) -> Mapping[str, Any]:
        """Server URL (without credentials) and model name."""
        return {"backend": self.name, "base_url": _public_url(self.base_url), "model": self.model}

    def _client(self) -> AsyncOpenAI:
        """A client without its own retries; over aiohttp when installed (40% less CPU per call)."""
        http = {"http_client": openai.DefaultAioHttpClient()} if _HAS_AIOHTTP else {}
        return AsyncOpenAI(
            base_url=self.base_url, api_key=self._key, timeout=self.timeout, max_retries=0, **http
        )

    # ---- requests ---------------------------------------------------------------------------

    def _messages(self, request: VLMRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for part in request.parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
                continue
            frames = part.frames if isinstance(part, VideoInput) else (part,)
            for frame in frames:
                url = jpeg_data_url(frame, self.jpeg_quality)
                content.append({"type": "image_url", "image_url": {"url": url}})
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return messages

    def _body(self, settings: GenerationSettings, score: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
        }
        if score:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        return body

    def generate(
        self, requests: Sequence[VLMRequest], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Free-text answers, up to `concurrency` requests in flight."""
        return self._run(
            requests, self._body(settings, score=False), lambda c: self._answer(c, None)
        )

    def score(
        self, requests: Sequence[VLMRequest], labels: Sequence[str], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Label log-probabilities estimated from the top log-probabilities along the answer."""
        return self._run(
            requests, self._body(settings, score=True), lambda c: self._answer(c, labels)
        )

    def _run(
        self,
        requests: Sequence[VLMRequest],
        body: Mapping[str, Any],
        read: Callable[[Any], VLMAnswer],
    ) -> list[VLMAnswer]:
        payloads = [self._messages(r) for r in requests]

        async def run_all() -> list[VLMAnswer]:
            limit = asyncio.Semaphore(self.concurrency)
            async with self._client() as client:

                async def one(messages: list[dict[str, Any]]) -> VLMAnswer:
                    async with limit:
                        return await self._call(client, messages, body, read)

                return await asyncio.gather(*(one(m) for m in payloads))

        return run_blocking(run_all())

    async def _call(
        self,
        client: AsyncOpenAI,
        messages: list[dict[str, Any]],
        body: Mapping[str, Any],
        read: Callable[[Any], VLMAnswer],
    ) -> VLMAnswer:
        """One request with bounded retries; never raises, a failure is an answer with `error`."""
        started = time.perf_counter()
        attempts = [0]
        try:
            answer = read(await self._create(client, messages, body, attempts))
        except (openai.APIError, MalformedResponseError) as exc:
            answer = VLMAnswer(error=self._describe(exc, attempts[0]))
        cost = Cost(calls=attempts[0], seconds=time.perf_counter() - started)
        return replace(answer, cost=answer.cost + cost)

    async def _create(
        self,
        client: AsyncOpenAI,
        messages: list[dict[str, Any]],
        body: Mapping[str, Any],
        attempts: list[int],
    ) -> Any:
        """The completion, retrying retryable failures; counts attempts into `attempts[0]`."""
        while True:
            attempts[0] += 1
            try:
                # client.post sends the JSON as built: the typed create() re-walks every message
                # part in Python, which costs a third of the client's CPU per request.
                return await client.post(
                    "/chat/completions",
                    body={"model": self.model, "messages": messages, **body},
                    cast_to=ChatCompletion,
                )
            except openai.APIError as exc:
                if attempts[0] > self.max_retries or not _retryable(exc):
                    raise
                await asyncio.sleep(self._delay(attempts[0], exc))
            except ValueError as exc:  # a body that is not JSON, or JSON that is no completion
                if attempts[0] > self.max_retries:
                    raise MalformedResponseError(f"{type(exc).__name__}: {exc}") from None
                await asyncio.sleep(self._delay(attempts[0], None))

    def _delay(self, attempt: int, exc: openai.APIError | None) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After (plus a little jitter)."""
        retry_after = _retry_after(exc) if exc is not None else None
        if retry_after is not None:
            return min(retry_after, _MAX_RETRY_AFTER) * random.uniform(1.0, 1.1)
        return random.uniform(0, min(_MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))

    def _describe(self, exc: openai.APIError | MalformedResponseError, attempts: int) -> str:
        """A one-line reason for a failed request, with the key scrubbed."""
        where = f"{_public_url(self.base_url)} (model {self.model!r})"
        if isinstance(exc, MalformedResponseError):
            return f"malformed response from {where} after {attempts} attempts: {exc}"
        message = self._redact(_server_message(exc))
        if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
            return f"timed out after {self.timeout:g} s ({attempts} attempts) at {where}"
        if isinstance(exc, openai.APIConnectionError):
            cause = self._redact(" ".join(str(exc.__cause__ or message).split()))
            return f"cannot reach {where} after {attempts} attempts: {cause}"
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code in (400, 413, 422) and _CONTEXT.search(message):
                return f"context too long: {message}; use fewer --frames or a smaller --image-size"
            return f"server error {exc.status_code} after {attempts} attempts: {message}"
        return f"request to {where} failed: {message}"

    # ---- answers ----------------------------------------------------------------------------

    def _answer(self, completion: Any, labels: Sequence[str] | None) -> VLMAnswer:
        """Text, refusal, usage and (score mode) label log-probabilities of one completion."""
        try:
            choice = completion.choices[0]
            message = choice.message
            usage = completion.usage
            cost = Cost(
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            )
            refusal = message.refusal or ""
            if choice.finish_reason == "content_filter" and not refusal:
                refusal = "blocked by the server's content filter"
            logprobs = None
            if labels is not None:
                logprobs = _label_logprobs(choice, labels)
                if logprobs is None:
                    return VLMAnswer(
                        cost=cost, error="the server returned no token log-probabilities"
                    )
            return VLMAnswer(
                text=(message.content or "").strip(),
                label_logprobs=logprobs,
                cost=cost,
                finish_reason=choice.finish_reason or "",
                refusal=refusal,
            )
        except (AttributeError, IndexError, TypeError, ValueError, KeyError) as exc:
            return VLMAnswer(error=f"malformed response from the server ({type(exc).__name__})")

    # ---- preflight --------------------------------------------------------------------------

    def preflight(self, mode: Mode) -> None:
        """Check once per mode that the server answers, serves the model, takes images (and logprobs)."""
        if mode not in self._checked:
            run_blocking(self._preflight(mode))
            self._checked.add(mode)

    async def _preflight(self, mode: Mode) -> None:
        where = f"OpenAI-compatible server at {_public_url(self.base_url)}"
        probe = self._messages(VLMRequest((_PROBE_IMAGE, "Reply with one word.")))
        body = self._body(GenerationSettings(max_new_tokens=1), score=mode == "score")
        async with self._client() as client:
            await self._check_model_listed(client, where)
            try:
                completion = await self._create(client, probe, body, [0])
            except openai.APIConnectionError as exc:
                raise BackendError(
                    f"cannot reach {where} ({self._redact(_server_message(exc))}); start the "
                    "server or fix --base-url"
                ) from None
            except (openai.AuthenticationError, openai.PermissionDeniedError):
                raise BackendError(self._key_message(where)) from None
            except openai.NotFoundError:
                raise BackendError(
                    f"{where} does not serve model {self.model!r}; fix --model"
                ) from None
            except openai.APIError as exc:
                message = self._redact(_server_message(exc))
                if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) and (
                    _NO_VISION.search(message)
                ):
                    raise BackendError(
                        f"model {self.model!r} at {where} does not accept images ({message}); "
                        "serve a vision-language model"
                    ) from None
                raise BackendError(
                    f"{where} rejected a one-image test request: {message}"
                ) from None
        if mode == "score" and self._answer(completion, ["ok"]).error:
            raise BackendError(
                f"{where} does not return token log-probabilities for model {self.model!r}; use "
                "--mode generate, or a server that supports logprobs (vLLM, SGLang, OpenAI)"
            )

    def _key_message(self, where: str) -> str:
        state = "is not set" if self.api_key_env not in os.environ else "was rejected"
        return f"{where} refused the request: the API key in ${self.api_key_env} {state}; set it"

    async def _check_model_listed(self, client: AsyncOpenAI, where: str) -> None:
        """Fail early on an unreachable server, a rejected key or a model the server does not list."""
        try:
            page = await client.models.list()
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"cannot reach {where} ({self._redact(_server_message(exc))}); start the server "
                "or fix --base-url"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError):
            raise BackendError(self._key_message(where)) from None
        except openai.APIError:
            return  # some servers do not list models; the probe request decides
        served = [m.id for m in page.data]
        if served and not any(_same_model(self.model, m) for m in served):
            raise BackendError(
                f"{where} does not serve model {self.model!r}; it serves: {', '.join(served[:20])}; "
                "fix --model"
            )


def _same_model(asked: str, listed: str) -> bool:
    """Model names as servers list them: Gemini prefixes "models/", Ollama suffixes ":latest"."""
    a, b = asked.removesuffix(":latest"), listed.removesuffix(":latest")
    return a == b or b.endswith("/" + a) or a.endswith("/" + b)


def _retryable(exc: openai.APIError) -> bool:
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def _refused(exc: openai.APITimeoutError) -> bool:
    """Whether a "timeout" is a connection that never opened (the aiohttp transport reports a
    refused connection as the HTTP library's ConnectTimeout, within milliseconds)."""
    return type(exc.__cause__).__name__ == "ConnectTimeout"


def _retry_after(exc: openai.APIError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _server_message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, Mapping) else error
        if message:
            return " ".join(str(message).split())
    return " ".join(str(getattr(exc, "message", exc)).split())


def _label_logprobs(choice: Any, labels: Sequence[str]) -> dict[str, float] | None:
    content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
    if not content:
        return None
    steps = [
        TokenStep(
            item.token,
            item.logprob,
            {
                **{alt.token: alt.logprob for alt in item.top_logprobs or ()},
                item.token: item.logprob,
            },
        )
        for item in content
    ]
    return label_logprobs_from_top(steps, labels)

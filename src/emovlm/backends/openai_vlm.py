"""The `openai` VLM backend: any OpenAI-compatible chat server, async, bounded, retried, key-safe.

Works with vLLM, SGLang, Ollama, llama.cpp server and hosted APIs (OpenAI, Gemini's compatible
endpoint). Images go as base64 JPEG data URLs; a video's frames go as images in time order or,
with `frames_as="video"`, as one MP4 data URL in a `video_url` part. Concurrency adapts to the
server's 429/503/timeouts under the `concurrency` ceiling, with optional request and token rate
limits. The API key is read from an environment variable and is scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from emovlm.backends.chat_http import (
    ChatHTTP,
    HTTPFailure,
    RequestTimeout,
    StatusError,
    Unreachable,
)
from emovlm.backends.concurrency import AdaptiveLimiter, TokenBucket
from emovlm.backends.images import jpeg_data_url
from emovlm.backends.request_tokens import (
    DEFAULT_IMAGE_TOKENS,
    family_of,
    text_tokens,
    visual_of,
    visual_tokens,
)
from emovlm.backends.top_logprobs import TokenStep, label_logprobs_from_top
from emovlm.backends.video_payload import mp4_data_url
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
logger = logging.getLogger(__name__)
FRAMES_AS = ("images", "video", "auto")
"""How a clip's frames are sent: as images in time order, as one MP4, or video if the server
takes it (asked once before the run), else images."""
_RETRY_STATUS = {408, 409, 429}
_OVERLOAD_STATUS = {429, 503}
_MAX_BACKOFF = 30.0
_MAX_RETRY_AFTER = 120.0
_KEY_LIKE = re.compile(r"\b(sk|rk|pk|key)[-_][A-Za-z0-9_*.\-]{4,}")
_CONTEXT = re.compile(r"context|too long|maximum.{0,20}length|too many tokens|exceeds", re.I)
_NO_VISION = re.compile(r"image|vision|multimodal|multi-modal", re.I)
_NO_VIDEO = re.compile(r"video", re.I)
_TOO_LARGE = re.compile(
    r"too large|too big|exceeds?.{0,30}(size|pixels|dimension)|max.{0,20}(size|pixels)", re.I
)
_PROBE_VIDEO_FPS = 2.0


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

    `concurrency` is the ceiling of requests in flight; 429, 503 and timeouts lower the limit
    (AIMD, see `concurrency.AdaptiveLimiter`) and a Retry-After pauses every request. Each
    request is retried up to `max_retries` times on 408/409/429/5xx, timeouts and connection
    errors, with exponential backoff and full jitter. `rpm` and `tpm` cap requests and estimated
    tokens per minute. `frames_as` picks how a clip's frames go (FRAMES_AS); `image_size` is the
    side of the preflight's test image (the largest the run sends). Score mode reads
    `top_logprobs`; a server that does not return them fails the preflight with a clear error.
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
        frames_as: str = "images",
        rpm: float | None = None,
        tpm: float | None = None,
        image_size: int = 32,
        revision: str | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in {"http", "https"}:
            raise InputError(f"--base-url {base_url!r} must start with http:// or https://")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise InputError("--concurrency must be ≥ 1, retries ≥ 0 and the timeout > 0")
        if frames_as not in FRAMES_AS:
            raise InputError(f"--frames-as {frames_as!r} is unknown; choose {', '.join(FRAMES_AS)}")
        if (rpm is not None and rpm <= 0) or (tpm is not None and tpm <= 0):
            raise InputError("--rpm and --tpm must be positive (leave them out for no limit)")
        self.model, self.base_url, self.api_key_env = model, base_url.rstrip("/"), api_key_env
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff, self.top_logprobs, self.jpeg_quality = backoff, top_logprobs, jpeg_quality
        self._checked: set[str] = set()
        self.frames_as, self.image_size = frames_as, image_size
        self.revision = revision
        self._video: bool | None = {"images": False, "video": None, "auto": None}[frames_as]
        self.limiter = AdaptiveLimiter(concurrency)
        self._rpm = TokenBucket(rpm) if rpm else None
        self._tpm = TokenBucket(tpm) if tpm else None
        self.family = family_of(model)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    @property
    def _key(self) -> str:
        return os.environ.get(self.api_key_env) or "not-set"

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            text = text.replace(key, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)

    def fingerprint(self) -> Mapping[str, Any]:
        """Server URL (without credentials), model name, the user-given model `revision` if any,
        and `frames_as: video` when clips go as MP4 (with `auto` the server is asked first)."""
        video = {"frames_as": "video"} if self.sends_video() else {}
        revision = {"revision": self.revision} if self.revision else {}
        return {
            "backend": self.name,
            "base_url": _public_url(self.base_url),
            "model": self.model,
            **revision,
            **video,
        }

    def sends_video(self) -> bool:
        """Whether a clip's frames go as one MP4; with `auto` this asks the server once."""
        if self._video is None:
            self._video = run_blocking(self._probe_video())
        return self._video

    def stats(self) -> dict[str, Any]:
        """How the run went: concurrency limit (ceiling, mean, min, final), requests, retries,
        rejections (429/503), timeouts, seconds waited (Retry-After, rate limits) and the visual
        tokens the server reported in `usage` (0 where it reports none)."""
        limiter = self.limiter.stats()
        with self._counts_lock:
            counts = dict(self._counts)
        return {
            "frames_as": "video" if self._video else "images" if self._video is False else "auto",
            "concurrency_ceiling": limiter.ceiling,
            "concurrency_mean": round(limiter.mean, 2),
            "concurrency_min": limiter.min,
            "concurrency_final": limiter.final,
            "requests": counts.get("requests", 0),
            "retries": counts.get("retries", 0),
            "rejections": counts.get("rejections", 0),
            "timeouts": counts.get("timeouts", 0),
            "wait_seconds": round(limiter.pause_seconds + limiter.rate_wait_seconds, 3),
            "retry_after_seconds": round(limiter.pause_seconds, 3),
            "rate_limit_seconds": round(limiter.rate_wait_seconds, 3),
            "visual_tokens_reported": counts.get("visual_tokens", 0),
        }

    def _count(self, **amounts: int) -> None:
        with self._counts_lock:
            self._counts.update(amounts)

    def _client(self) -> ChatHTTP:
        """A pooled HTTP client of this server (one per event loop), `concurrency` connections."""
        return ChatHTTP(self.base_url, self._key, self.timeout, limit=self.concurrency)

    # ---- requests ---------------------------------------------------------------------------

    def _messages(self, request: VLMRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        video = (
            any(isinstance(p, VideoInput) and len(p.frames) > 1 for p in request.parts)
            and self.sends_video()
        )
        for part in request.parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
                continue
            if video and isinstance(part, VideoInput) and len(part.frames) > 1:
                url = mp4_data_url(part.frames, part.fps)
                content.append({"type": "video_url", "video_url": {"url": url}})
                continue
            frames = part.frames if isinstance(part, VideoInput) else (part,)
            for frame in frames:
                url = jpeg_data_url(frame, self.jpeg_quality)
                content.append({"type": "image_url", "image_url": {"url": url}})
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return messages

    def messages(self, request: VLMRequest) -> list[dict[str, Any]]:
        """The chat messages of a request: images as JPEG, clips as JPEGs or one MP4 (CPU work:
        callers on an event loop build them on a thread)."""
        return self._messages(request)

    def estimate_tokens(self, request: VLMRequest) -> int:
        """Estimated prompt tokens of a request: text at 4 characters a token, visual by family."""
        video = self._video is True
        total = text_tokens(request.system)
        for part in request.parts:
            if isinstance(part, str):
                total += text_tokens(part)
            else:
                frames = part.frames if isinstance(part, VideoInput) else (part,)
                total += visual_tokens(self.family, visual_of(frames, video))
        return total

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

    async def answer(
        self,
        client: ChatHTTP,
        request: VLMRequest,
        settings: GenerationSettings,
        labels: Sequence[str] | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
    ) -> VLMAnswer:
        """One answer on `client` (from `_client()`), for callers keeping their own window in
        flight; with `labels`, label log-probabilities as `score`; `messages`: the request's
        `messages(request)` if the caller built them already. Never raises, as `_call`."""
        if messages is None:
            messages = await asyncio.to_thread(self._messages, request)  # JPEG work off the loop
        body = self._body(settings, score=labels is not None)
        tokens = self.estimate_tokens(request) if self._tpm else None
        return await self._call(
            client, messages, body, lambda c: self._answer(c, labels), tokens=tokens
        )

    def _run(
        self,
        requests: Sequence[VLMRequest],
        body: Mapping[str, Any],
        read: Callable[[Any], VLMAnswer],
    ) -> list[VLMAnswer]:
        payloads = [self._messages(r) for r in requests]
        tokens = [self.estimate_tokens(r) if self._tpm else 0 for r in requests]

        async def run_all() -> list[VLMAnswer]:
            async with self._client() as client:
                return await asyncio.gather(
                    *(
                        self._call(client, m, body, read, tokens=t)
                        for m, t in zip(payloads, tokens, strict=True)
                    )
                )

        return run_blocking(run_all())

    async def _call(
        self,
        client: ChatHTTP,
        messages: list[dict[str, Any]],
        body: Mapping[str, Any],
        read: Callable[[Any], VLMAnswer],
        *,
        tokens: int | None = None,
    ) -> VLMAnswer:
        """One request with bounded retries under the adaptive limit and the rate limits; never
        raises, a failure is an answer with `error`. `tokens`: the request's estimated prompt
        tokens for `tpm` (default: estimated from the messages)."""
        started = time.perf_counter()
        attempts = [0]
        if self._tpm and tokens is None:
            tokens = _message_tokens(messages)
        try:
            completion = await self._create(client, messages, body, attempts, tokens or 0)
            answer = read(completion)
        except (HTTPFailure, MalformedResponseError) as exc:
            answer = VLMAnswer(error=self._describe(exc, attempts[0]))
        else:
            reported = _reported_visual_tokens(completion)
            if reported:
                self._count(visual_tokens=reported)
                answer = replace(answer, cost=replace(answer.cost, visual_tokens=reported))
        self._count(requests=attempts[0], retries=max(0, attempts[0] - 1))
        cost = Cost(calls=attempts[0], seconds=time.perf_counter() - started)
        return replace(answer, cost=answer.cost + cost)

    async def _send(
        self,
        client: ChatHTTP,
        messages: list[dict[str, Any]],
        body: Mapping[str, Any],
        tokens: int,
    ) -> Any:
        """One attempt: a slot under the adaptive limit, the rate limits, then the request."""
        ticket = await self.limiter.acquire()
        try:
            wait = max(
                self._rpm.reserve(1) if self._rpm else 0.0,
                self._tpm.reserve(tokens) if self._tpm else 0.0,
            )
            if wait > 0:
                self.limiter.rate_wait(wait)
                await asyncio.sleep(wait)
            try:
                completion = await client.post(
                    "/chat/completions", {"model": self.model, "messages": messages, **body}
                )
            except HTTPFailure as exc:
                if _overload(exc):
                    self._count(
                        rejections=int(isinstance(exc, StatusError)),
                        timeouts=int(isinstance(exc, RequestTimeout)),
                    )
                    self.limiter.overloaded(ticket, _retry_after(exc))
                raise
            self.limiter.succeeded()
            return completion
        finally:
            self.limiter.release()

    async def _create(
        self,
        client: ChatHTTP,
        messages: list[dict[str, Any]],
        body: Mapping[str, Any],
        attempts: list[int],
        tokens: int = 0,
    ) -> Any:
        """The completion, retrying retryable failures; counts attempts into `attempts[0]`."""
        while True:
            attempts[0] += 1
            try:
                return await self._send(client, messages, body, tokens)
            except HTTPFailure as exc:
                if attempts[0] > self.max_retries or not _retryable(exc):
                    raise
                await asyncio.sleep(self._delay(attempts[0], exc))
            except ValueError as exc:  # a body that is not JSON, or JSON that is no completion
                if attempts[0] > self.max_retries:
                    raise MalformedResponseError(f"{type(exc).__name__}: {exc}") from None
                await asyncio.sleep(self._delay(attempts[0], None))

    def _delay(self, attempt: int, exc: HTTPFailure | None) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After (plus a little jitter)."""
        retry_after = _retry_after(exc) if exc is not None else None
        if retry_after is not None:  # the limiter pauses every request as long; this one too
            return min(retry_after, _MAX_RETRY_AFTER) * random.uniform(1.0, 1.1)
        return random.uniform(0, min(_MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))

    def _describe(self, exc: HTTPFailure | MalformedResponseError, attempts: int) -> str:
        """A one-line reason for a failed request, with the key scrubbed."""
        where = f"{_public_url(self.base_url)} (model {self.model!r})"
        if isinstance(exc, MalformedResponseError):
            return f"malformed response from {where} after {attempts} attempts: {exc}"
        message = self._redact(_server_message(exc))
        if isinstance(exc, RequestTimeout):
            return f"timed out after {self.timeout:g} s ({attempts} attempts) at {where}"
        if isinstance(exc, Unreachable):
            return f"cannot reach {where} after {attempts} attempts: {message}"
        if isinstance(exc, StatusError):
            if (
                exc.status in (400, 413, 422)
                and _TOO_LARGE.search(message)
                and (_NO_VISION.search(message) or exc.status == 413)
            ):
                return f"image too large for the server: {message}; use a smaller --image-size"
            if exc.status in (400, 413, 422) and _CONTEXT.search(message):
                return f"context too long: {message}; use fewer --frames or a smaller --image-size"
            if exc.status in (400, 415, 422) and _NO_VIDEO.search(message):
                return f"video refused by the server: {message}; use --frames-as images"
            return f"server error {exc.status} after {attempts} attempts: {message}"
        return f"request to {where} failed: {message}"

    # ---- answers ----------------------------------------------------------------------------

    def _answer(self, completion: Mapping[str, Any], labels: Sequence[str] | None) -> VLMAnswer:
        """Text, refusal, usage and (score mode) label log-probabilities of one completion."""
        try:
            choice = completion["choices"][0]
            message = choice["message"]
            usage = completion.get("usage") or {}
            cost = Cost(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            )
            refusal = message.get("refusal") or ""
            finish = choice.get("finish_reason") or ""
            if finish == "content_filter" and not refusal:
                refusal = "blocked by the server's content filter"
            logprobs = None
            if labels is not None:
                logprobs = _label_logprobs(choice, labels)
                if logprobs is None:
                    return VLMAnswer(
                        cost=cost, error="the server returned no token log-probabilities"
                    )
            return VLMAnswer(
                text=(message.get("content") or "").strip(),
                label_logprobs=logprobs,
                cost=cost,
                finish_reason=finish,
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

    @property
    def _where(self) -> str:
        return f"OpenAI-compatible server at {_public_url(self.base_url)}"

    async def _preflight(self, mode: Mode) -> None:
        where = self._where
        side = max(32, self.image_size)
        image = np.full((side, side, 3), 128, dtype=np.uint8)
        probe = self._messages(VLMRequest((image, "Reply with one word.")))
        body = self._body(GenerationSettings(max_new_tokens=1), score=mode == "score")
        async with self._client() as client:
            await self._check_model_listed(client, where)
            completion, refused = await self._probe(client, probe, body)
            if refused is not None:
                message = self._redact(_server_message(refused))
                if _TOO_LARGE.search(message) or refused.status == 413:
                    raise BackendError(
                        f"{where} refuses a {side}×{side} test image ({message}); lower "
                        "--image-size"
                    )
                if _NO_VISION.search(message):
                    raise BackendError(
                        f"model {self.model!r} at {where} does not accept images ({message}); "
                        "serve a vision-language model"
                    )
                raise BackendError(f"{where} rejected a one-image test request: {message}")
            if self._video is None:
                self._video = await self._video_accepted(client)
        if mode == "score" and self._answer(completion, ["ok"]).error:
            raise BackendError(
                f"{where} does not return token log-probabilities for model {self.model!r}; use "
                "--mode generate, or a server that supports logprobs (vLLM, SGLang, OpenAI)"
            )

    async def _probe(
        self, client: ChatHTTP, messages: list[dict[str, Any]], body: Mapping[str, Any]
    ) -> tuple[Any, StatusError | None]:
        """A test request's completion, or the server's 4xx refusal of it; a server that cannot
        be reached, a rejected key or an unknown model raise a BackendError with the fix."""
        where = self._where
        try:
            return await self._create(client, messages, body, [0]), None
        except Unreachable as exc:
            raise self._unreachable(exc, where) from None
        except StatusError as exc:
            if exc.status in (401, 403):
                raise BackendError(self._key_message(where)) from None
            if exc.status == 404:
                raise BackendError(
                    f"{where} does not serve model {self.model!r}; fix --model"
                ) from None
            if 400 <= exc.status < 500:
                return None, exc
            raise BackendError(
                f"{where} failed a test request ({exc.status}: "
                f"{self._redact(_server_message(exc))}); check the server's log"
            ) from None

    async def _probe_video(self) -> bool:
        async with self._client() as client:
            return await self._video_accepted(client)

    async def _video_accepted(self, client: ChatHTTP) -> bool:
        """Ask once whether the server takes a 2-frame MP4 `video_url` part. Refused: with
        --frames-as video a BackendError, with auto a logged note and False (images)."""
        side = max(32, min(self.image_size, 448))
        frames = [np.full((side, side, 3), v, dtype=np.uint8) for v in (64, 192)]
        url = mp4_data_url(frames, _PROBE_VIDEO_FPS)
        content = [
            {"type": "video_url", "video_url": {"url": url}},
            {"type": "text", "text": "Reply with one word."},
        ]
        body = self._body(GenerationSettings(max_new_tokens=1), score=False)
        _, refused = await self._probe(client, [{"role": "user", "content": content}], body)
        if refused is None:
            return True
        message = self._redact(_server_message(refused))
        if self.frames_as == "video":
            raise BackendError(
                f"model {self.model!r} at {self._where} does not take video input ({message}); "
                "use --frames-as images (or auto)"
            )
        logger.warning(
            "note: model %r at %s does not take video input (%s); sending each clip's frames "
            "as images (--frames-as auto)",
            self.model,
            self._where,
            message,
        )
        return False

    def _unreachable(self, exc: Unreachable, where: str) -> BackendError:
        """The error for a server that cannot be reached, with the fix."""
        return BackendError(
            f"cannot reach {where} ({self._redact(_server_message(exc))}); start the server "
            "or fix --base-url"
        )

    def _key_message(self, where: str) -> str:
        state = "is not set" if self.api_key_env not in os.environ else "was rejected"
        return f"{where} refused the request: the API key in ${self.api_key_env} {state}; set it"

    async def _check_model_listed(self, client: ChatHTTP, where: str) -> None:
        """Fail early on an unreachable server, a rejected key or a model the server does not list."""
        try:
            page = await client.get("/models")
        except Unreachable as exc:
            raise self._unreachable(exc, where) from None
        except StatusError as exc:
            if exc.status in (401, 403):
                raise BackendError(self._key_message(where)) from None
            return  # some servers do not list models; the probe request decides
        except ValueError:
            return
        listed = page.get("data")
        served = (
            [str(m["id"]) for m in listed if isinstance(m, Mapping) and "id" in m]
            if isinstance(listed, list)
            else []
        )
        if served and not any(_same_model(self.model, m) for m in served):
            raise BackendError(
                f"{where} does not serve model {self.model!r}; it serves: {', '.join(served[:20])}; "
                "fix --model"
            )


def _same_model(asked: str, listed: str) -> bool:
    """Model names as servers list them: Gemini prefixes "models/", Ollama suffixes ":latest"."""
    a, b = asked.removesuffix(":latest"), listed.removesuffix(":latest")
    return a == b or b.endswith("/" + a) or a.endswith("/" + b)


def _overload(exc: HTTPFailure) -> bool:
    """429, 503 and timeouts: the server has more than it can take right now."""
    if isinstance(exc, RequestTimeout):
        return True
    return isinstance(exc, StatusError) and exc.status in _OVERLOAD_STATUS


def _reported_visual_tokens(completion: Mapping[str, Any]) -> int:
    """Image and video tokens the server reports in `usage.prompt_tokens_details` (0: none)."""
    usage = completion.get("usage")
    details = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
    if not isinstance(details, Mapping):
        return 0
    total = 0
    for name in ("image_tokens", "video_tokens"):
        value = details.get(name)
        if isinstance(value, int):
            total += value
    return total


def _message_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A rough prompt-token estimate from built messages: text at 4 characters a token, each
    image or video part at the default of `request_tokens` (used when no estimate was given)."""
    total = 0
    for message in messages:
        content = message["content"]
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if part["type"] == "text":
                total += text_tokens(part["text"])
            else:
                total += DEFAULT_IMAGE_TOKENS
    return total


def _retryable(exc: HTTPFailure) -> bool:
    if isinstance(exc, Unreachable):
        return True
    if isinstance(exc, StatusError):
        return exc.status in _RETRY_STATUS or exc.status >= 500
    return False


def _retry_after(exc: HTTPFailure) -> float | None:
    value = exc.retry_after if isinstance(exc, StatusError) else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _server_message(exc: HTTPFailure) -> str:
    body = exc.body if isinstance(exc, StatusError) else None
    if isinstance(body, Mapping):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, Mapping) else error
        if message:
            return " ".join(str(message).split())
    return " ".join(str(exc).split())


def _label_logprobs(choice: Mapping[str, Any], labels: Sequence[str]) -> dict[str, float] | None:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not content:
        return None
    steps = [
        TokenStep(
            item["token"],
            item["logprob"],
            {
                **{alt["token"]: alt["logprob"] for alt in item.get("top_logprobs") or ()},
                item["token"]: item["logprob"],
            },
        )
        for item in content
    ]
    return label_logprobs_from_top(steps, labels)

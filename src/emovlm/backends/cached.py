"""A VLM wrapper that answers repeated deterministic requests from the response cache."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from emovlm.backends.cache import ResponseCache, request_key
from emovlm.backends.vlm import VLM, GenerationSettings, Mode, VLMAnswer, VLMRequest

Ready = tuple[str | None, VLMAnswer | None, Any]
"""A request made ready to send: its cache key, its cached answer, the backend's messages."""
RECENT_ANSWERS = 4096
"""Answers kept by key after they arrive, so an identical request already past its cache lookup
waits for (or reuses) the one in flight instead of asking the server again."""


class CachedVLM:
    """Serve temperature-0 requests from the cache; send only misses to the backend.

    The backend's preflight runs before its first real call, so a fully cached run makes no
    model call and needs no server. Failed answers are never cached; refusals and empty answers
    are (they are what the model answers). `answer` serves one request at a time for backends
    with an async `answer` (see `streams`), storing each answer the moment it arrives; identical
    requests in flight together are sent once.
    """

    def __init__(self, backend: VLM, cache: ResponseCache | None) -> None:
        self.backend = backend
        self.cache = cache
        self.name = backend.name
        self._preflight_lock = threading.Lock()
        self._preflighted: set[Mode] = set()
        self._recent: OrderedDict[tuple[int, str], asyncio.Future[VLMAnswer]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its lock and answers in flight (for worker processes)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_preflight_lock", "_recent")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _preflight_lock=threading.Lock(), _recent=OrderedDict())

    @property
    def streams(self) -> bool:
        """Whether the backend answers one request at a time asynchronously (a server)."""
        return hasattr(self.backend, "answer")

    def client(self) -> Any:
        """A new async client of the backend, for `answer` (close it on the same event loop)."""
        return self.backend._client()  # type: ignore[attr-defined]

    async def answer(
        self,
        client: Any,
        mode: Mode,
        request: VLMRequest,
        settings: GenerationSettings,
        labels: Sequence[str] | None,
        pool: Executor,
        ready: Ready | None = None,
    ) -> VLMAnswer:
        """One answer: from the cache, else from the backend, cached (and committed) on arrival.

        Hashing, the cache lookup and building the request's messages (`ready`, unless the
        caller did it already) run as one job on `pool`, off the event loop, as do cache writes
        and the preflight.
        """
        loop = asyncio.get_running_loop()
        if ready is None:
            ready = await loop.run_in_executor(pool, self.ready, mode, request, settings, labels)
        key, hit, _ = ready
        if hit is not None:
            return hit
        if key is None:
            return await self._send(client, mode, request, settings, labels, pool, ready)
        shared = (id(loop), key)
        if shared in self._recent:  # the same request is in flight, or was just answered
            return replace(await asyncio.shield(self._recent[shared]), cached=True)
        future: asyncio.Future[VLMAnswer] = loop.create_future()
        self._recent[shared] = future
        while len(self._recent) > RECENT_ANSWERS:
            self._recent.popitem(last=False)
        try:
            answer = await self._send(client, mode, request, settings, labels, pool, ready)
        except BaseException as exc:
            self._recent.pop(shared, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # waiters re-raise it; nobody waiting is not an error
            raise
        future.set_result(answer)
        if answer.error:  # a failed request may be asked again (e.g. --retry-failed)
            self._recent.pop(shared, None)
        return answer

    async def _send(
        self,
        client: Any,
        mode: Mode,
        request: VLMRequest,
        settings: GenerationSettings,
        labels: Sequence[str] | None,
        pool: Executor,
        ready: Ready,
    ) -> VLMAnswer:
        """Ask the backend (after its preflight) and cache a good answer the moment it arrives."""
        key, _, messages = ready
        loop = asyncio.get_running_loop()
        if mode not in self._preflighted:
            await loop.run_in_executor(pool, self._preflight_once, mode)
        answer = await self.backend.answer(  # type: ignore[attr-defined]
            client, request, settings, labels if mode == "score" else None, messages=messages
        )
        if key is not None and not answer.error:
            await loop.run_in_executor(pool, self.cache.put_many, {key: answer.to_json()})  # type: ignore[union-attr]
        return answer

    def ready(
        self,
        mode: Mode,
        request: VLMRequest,
        settings: GenerationSettings,
        labels: Sequence[str] | None,
    ) -> Ready:
        """The request's cache key (None: not cached), its cached answer if any, else the
        backend's messages for it (CPU and disk work: call it off the event loop)."""
        key = None
        if self.cache is not None and settings.deterministic:
            key = self.key(mode, request, settings, labels)
            hit = self.cache.get_many([key]).get(key)
            if hit is not None:
                return key, VLMAnswer.from_json(hit), None
        return key, None, self.backend.messages(request)  # type: ignore[attr-defined]

    def _preflight_once(self, mode: Mode) -> None:
        with self._preflight_lock:
            self.backend.preflight(mode)
            self._preflighted.add(mode)

    def fingerprint(self) -> Mapping[str, Any]:
        """The wrapped backend's fingerprint."""
        return self.backend.fingerprint()

    def preflight(self, mode: Mode) -> None:
        """The wrapped backend's preflight."""
        self.backend.preflight(mode)

    def generate(
        self, requests: Sequence[VLMRequest], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Free-text answers, cached where deterministic."""
        return self._answers("generate", requests, settings, None)

    def score(
        self, requests: Sequence[VLMRequest], labels: Sequence[str], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Label log-probabilities, cached where deterministic."""
        return self._answers("score", requests, settings, labels)

    def key(
        self,
        mode: Mode,
        request: VLMRequest,
        settings: GenerationSettings,
        labels: Sequence[str] | None,
    ) -> str:
        """The cache key of one request: backend fingerprint, mode, labels, settings and content."""
        return request_key(
            self.backend.fingerprint(),
            mode,
            list(labels or ()),
            settings,
            request.parts,
            request.system,
        )

    def _answers(
        self,
        mode: Mode,
        requests: Sequence[VLMRequest],
        settings: GenerationSettings,
        labels: Sequence[str] | None,
    ) -> list[VLMAnswer]:
        def call(batch: Sequence[VLMRequest]) -> list[VLMAnswer]:
            """The wrapped backend's answers to `batch`."""
            self.backend.preflight(mode)
            if mode == "score":
                return self.backend.score(batch, labels or (), settings)
            return self.backend.generate(batch, settings)

        if self.cache is None or not settings.deterministic:
            return call(requests) if requests else []
        keys = [self.key(mode, r, settings, labels) for r in requests]
        hits = self.cache.get_many(keys)
        answers = {k: VLMAnswer.from_json(v) for k, v in hits.items()}
        missing = [i for i, k in enumerate(keys) if k not in answers]
        if missing:
            fresh = call([requests[i] for i in missing])
            by_index = dict(zip(missing, fresh, strict=True))
            self.cache.put_many({keys[i]: a.to_json() for i, a in by_index.items() if not a.error})
            return [by_index[i] if i in by_index else answers[keys[i]] for i in range(len(keys))]
        return [answers[k] for k in keys]

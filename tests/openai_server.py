"""A real OpenAI-compatible chat server for tests and benchmarks, on 127.0.0.1 only.

It checks each request as a strict server would (model, messages, image data URLs, logprob
fields), answers deterministically from the images' colour, and can inject faults per request
(status codes with Retry-After, latency, garbage bodies, dropped connections) chosen by a marker
text in the prompt, so tests stay deterministic under concurrency. Like real servers it can
refuse video parts, refuse images over a size, refuse prompts over a context length, and admit
only so many requests at once (429 with Retry-After beyond). It decodes MP4 `video_url` parts
with PyAV and records their frames and frame rate. It serves `/v1/models` and
`/v1/chat/completions`, records what it received, and stops itself after `lifetime` seconds.
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import numpy as np
from PIL import Image

DFEW_LABELS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")


@dataclass
class Fault:
    """What to do instead of (or before) answering one matching request."""

    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    garbage: bool = False
    drop: bool = False
    message: str = "injected failure"


def colour_answer(images: list[np.ndarray], text: str) -> str:
    """The default rule: the first image's dominant colour names the emotion (no image: neutral)."""
    if not images:
        return "neutral"
    r, g, b = images[0].reshape(-1, 3).mean(0)
    if max(r, g, b) - min(r, g, b) < 40:
        return "neutral"
    return {0: "angry", 1: "happy", 2: "sad"}[int(np.argmax([r, g, b]))]


def pieces(text: str) -> list[str]:
    """The server's toy tokenizer: chunks of three characters."""
    return [text[i : i + 3] for i in range(0, len(text), 3)] or [""]


@dataclass
class Behaviour:
    """How the server acts; tests change fields while it runs."""

    models: tuple[str, ...] = ("tiny-vlm",)
    api_key: str | None = None
    vision: bool = True
    logprobs: bool = True
    list_models: bool = True
    latency: float = 0.0
    decode_images: bool = True
    context_limit: int | None = None
    labels: tuple[str, ...] = DFEW_LABELS
    answer: Callable[[list[np.ndarray], str], str] = colour_answer
    key: Callable[[list[np.ndarray], str], str] = lambda images, text: text
    """What fault and refusal markers are looked for in (default: the prompt text)."""
    refuse_marker: str = "[refuse]"
    empty_marker: str = "[empty]"
    echo_key_marker: str = "[echo-key]"
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    failure_rate: float = 0.0
    """Share of requests (after the scheduled faults) that fail in a way drawn from CHAOS."""
    failure_seed: int = 0
    slow_seconds: float = 1.0
    """How long a "slow" chaos request waits before answering (set it above the client timeout)."""
    video: bool = True
    """Whether `video_url` parts are taken (False: refused as a server without video support)."""
    max_image_side: int | None = None
    """Images (and video frames) with a longer side are refused with 400."""
    max_concurrent: int | None = None
    """Requests answered at once; more get 429 with Retry-After `busy_retry_after` at once."""
    busy_retry_after: float = 0.05
    latency_of: Callable[[int], float] | None = None
    """Seconds the n-th chat request (from 1) takes, instead of `latency` (latency profiles)."""
    hold_from: int | None = None
    """Chat requests from this number on wait for `FakeOpenAIServer.release` before answering."""


CHAOS = ("429", "500", "503", "drop", "garbage", "slow")
"""The ways a chaos request fails: status codes (429 with Retry-After), a dropped connection,
a body that is not JSON, an answer slower than the client waits."""


def chaos_fault(kind: str, behaviour: Behaviour) -> Fault:
    """The fault that stands for one of CHAOS."""
    if kind == "drop":
        return Fault(drop=True)
    if kind == "garbage":
        return Fault(garbage=True)
    if kind == "slow":
        return Fault(delay=behaviour.slow_seconds)
    return Fault(status=int(kind), retry_after=0.05 if kind == "429" else None)


def label_distribution(answer: str, labels: tuple[str, ...]) -> dict[str, float]:
    """The answer gets 0.55; the other labels share the rest in a fixed uneven way."""
    others = [lab for lab in labels if lab != answer]
    weights = [i + 1.0 for i in range(len(others))]
    total = sum(weights)
    dist = {lab: 0.45 * w / total for lab, w in zip(others, weights, strict=True)}
    if answer in labels:
        dist[answer] = 0.55
    else:
        dist = {lab: p / 0.45 for lab, p in dist.items()}
    return dist


def logprob_content(answer: str, dist: dict[str, float], top_n: int) -> list[dict[str, Any]]:
    """Token log-probabilities of `answer` under a model that writes label strings piece by piece."""
    content, prefix = [], ""
    for token in pieces(answer):
        consistent = {lab: p for lab, p in dist.items() if lab.startswith(prefix)}
        total = sum(consistent.values()) or 1.0
        nxt: dict[str, float] = {}
        for lab, p in consistent.items():
            piece = lab[len(prefix) : len(prefix) + 3] or "<end>"
            nxt[piece] = nxt.get(piece, 0.0) + p / total
        nxt.setdefault(token, 1e-6)
        ranked = sorted(nxt.items(), key=lambda kv: -kv[1])[:top_n]
        content.append(
            {
                "token": token,
                "logprob": math.log(nxt[token]),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": math.log(p), "bytes": list(t.encode())}
                    for t, p in ranked
                ],
            }
        )
        prefix += token
    return content


class BadRequest(Exception):
    """A request a strict server refuses (status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _decode_data_url(url: str) -> np.ndarray:
    if not url.startswith("data:image/jpeg;base64,"):
        raise BadRequest(400, f"image_url must be a base64 JPEG data URL, got {url[:30]!r}")
    raw = base64.b64decode(url.split(",", 1)[1], validate=True)
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _decode_video_url(url: str) -> dict[str, Any]:
    """The frames (RGB, in presentation order) and frame rate of a base64 MP4 data URL."""
    if not url.startswith("data:video/mp4;base64,"):
        raise BadRequest(400, f"video_url must be a base64 MP4 data URL, got {url[:30]!r}")
    raw = base64.b64decode(url.split(",", 1)[1], validate=True)
    try:
        with av.open(io.BytesIO(raw)) as container:
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            fps = Fraction(stream.average_rate) if stream.average_rate else Fraction(0)
            codec = stream.codec_context.name
    except av.FFmpegError as exc:
        raise BadRequest(400, f"the video cannot be decoded: {exc}") from None
    return {"frames": frames, "fps": fps, "codec": codec, "bytes": len(raw)}


def _check_side(image: np.ndarray, limit: int | None) -> None:
    if limit is not None and max(image.shape[:2]) > limit:
        raise BadRequest(
            400,
            f"image too large: {image.shape[1]}x{image.shape[0]} exceeds the maximum image "
            f"size of {limit} pixels per side",
        )


def _visual_tokens(images: list[np.ndarray], videos: list[dict[str, Any]]) -> int:
    """The server's toy visual-token count: 85 per image, 85 per pair of video frames."""
    return 85 * len(images) + sum(85 * -(-len(v["frames"]) // 2) for v in videos)


class _Server(ThreadingHTTPServer):
    """A threading HTTP server with a listen backlog deep enough for many clients at once."""

    request_queue_size = 512
    daemon_threads = True


class FakeOpenAIServer:
    """Run the server in a daemon thread; use as a context manager."""

    def __init__(
        self, behaviour: Behaviour | None = None, lifetime: float = 600.0, port: int = 0
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.received: list[dict[str, Any]] = []
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.outcomes: list[int] = []
        """Per chat request in arrival order: 429 if turned away as busy, else 200 (admitted)."""
        self.answered = 0
        """Chat requests answered with a completion (counted as the response is sent)."""
        self.stopped = False
        self.release = threading.Event()
        """Set it to let requests held by `Behaviour.hold_from` go on."""
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._random = random.Random(self.behaviour.failure_seed)
        self._httpd = _Server(("127.0.0.1", port), self._handler())
        self._lifetime = lifetime
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (…/v1)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and free the port; kept-alive connections are dropped at their next
        request, as when a server process goes away."""
        self.stopped = True
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Forget recorded requests and calls."""
        with self._lock:
            self.received.clear()
            self.calls = 0
            self.max_in_flight = 0
            self.outcomes.clear()

    def take_fault(self, text: str) -> Fault | None:
        """The next scheduled fault whose marker occurs in `text` (see Behaviour.key), else a
        chaos fault with probability `failure_rate` (counted in `injected`), else None."""
        with self._lock:
            for marker, queue in self.behaviour.faults.items():
                if marker in text and queue:
                    return queue.pop(0)
            if self._random.random() < self.behaviour.failure_rate:
                kind = self._random.choice(CHAOS)
                self.injected[kind] += 1
                return chaos_fault(kind, self.behaviour)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as real servers send

            def log_message(self, *args: Any) -> None:
                return

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self._free_slot()  # the work is done before the answer leaves, as on real servers
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _error(
                self, status: int, message: str, headers: dict[str, str] | None = None
            ) -> None:
                self._send(
                    status,
                    {"error": {"message": message, "type": "error", "code": status}},
                    headers,
                )

            def _authorised(self) -> bool:
                key = server.behaviour.api_key
                if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                    return True
                self._error(401, "Incorrect API key provided")
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models" and server.behaviour.list_models:
                    data = [
                        {"id": m, "object": "model", "owned_by": "test"}
                        for m in server.behaviour.models
                    ]
                    self._send(200, {"object": "list", "data": data})
                else:
                    self._error(404, f"no route {self.path}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if server.stopped:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._error(404, f"no route {self.path}")
                    return
                limit = server.behaviour.max_concurrent
                with server._lock:
                    server.calls += 1
                    self._number = server.calls
                    busy = limit is not None and server.in_flight >= limit
                    server.outcomes.append(429 if busy else 200)
                    if not busy:
                        server.in_flight += 1
                        server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self._slot = False
                if busy:
                    retry = {"Retry-After": f"{server.behaviour.busy_retry_after}"}
                    self._error(429, "server busy: too many requests in flight", retry)
                    return
                self._slot = True
                try:
                    self._answer(raw)
                finally:
                    self._free_slot()

            def _free_slot(self) -> None:
                if getattr(self, "_slot", False):
                    self._slot = False
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, raw: bytes) -> None:
                try:
                    body = json.loads(raw)
                    text, images, videos = self._check(body)
                except BadRequest as exc:
                    self._error(exc.status, str(exc))
                    return
                except (ValueError, KeyError, TypeError) as exc:
                    self._error(400, f"malformed request: {exc}")
                    return
                with server._lock:
                    server.received.append(
                        {
                            "body": body,
                            "text": text,
                            "images": images,
                            "videos": videos,
                            "authorization": self.headers.get("Authorization", ""),
                            "number": self._number,
                            "peer": self.client_address[:2],
                        }
                    )
                seen = images + [frame for video in videos for frame in video["frames"]]
                probe = server.behaviour.key(seen, text)
                fault = server.take_fault(probe)
                b = server.behaviour
                if b.hold_from is not None and self._number >= b.hold_from:
                    server.release.wait()
                latency = b.latency_of(self._number) if b.latency_of else b.latency
                time.sleep(latency + (fault.delay if fault else 0.0))
                if fault and fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault and fault.garbage:
                    self._send(200, b"<html>this is not json")
                    return
                if fault and fault.status:
                    headers = (
                        {"Retry-After": f"{fault.retry_after}"}
                        if fault.retry_after is not None
                        else {}
                    )
                    self._error(fault.status, fault.message, headers)
                    return
                if server.behaviour.echo_key_marker in probe:
                    self._error(
                        400, f"bad request from key {self.headers.get('Authorization', '')[7:]}"
                    )
                    return
                completion = self._completion(body, text, images, videos, probe)
                with server._lock:  # counted before it leaves: a client may act on it at once
                    server.answered += 1
                self._send(200, completion)

            def _check(
                self, body: dict[str, Any]
            ) -> tuple[str, list[np.ndarray], list[dict[str, Any]]]:
                b = server.behaviour
                if body.get("model") not in b.models:
                    raise BadRequest(404, f"The model `{body.get('model')}` does not exist.")
                messages = body["messages"]
                if not isinstance(messages, list) or not messages:
                    raise BadRequest(400, "messages must be a non-empty list")
                texts, images, videos = [], [], []
                for message in messages:
                    if message["role"] not in {"system", "user", "assistant"}:
                        raise BadRequest(400, f"unknown role {message['role']}")
                    content = message["content"]
                    parts = (
                        [{"type": "text", "text": content}] if isinstance(content, str) else content
                    )
                    for part in parts:
                        if part["type"] == "text":
                            texts.append(part["text"])
                        elif part["type"] == "image_url":
                            if not b.vision:
                                raise BadRequest(
                                    400,
                                    "this model is not a multimodal model; image input is not supported",
                                )
                            url = part["image_url"]["url"]
                            images.append(
                                _decode_data_url(url) if b.decode_images else np.zeros((1, 1, 3))
                            )
                            _check_side(images[-1], b.max_image_side)
                        elif part["type"] == "video_url":
                            if not b.video:
                                raise BadRequest(400, "video input is not supported by this model")
                            videos.append(_decode_video_url(part["video_url"]["url"]))
                            for frame in videos[-1]["frames"]:
                                _check_side(frame, b.max_image_side)
                        else:
                            raise BadRequest(400, f"unknown content part type {part['type']!r}")
                if "logprobs" in body and not isinstance(body["logprobs"], bool):
                    raise BadRequest(400, "logprobs must be a boolean")
                if "top_logprobs" in body:
                    top = body["top_logprobs"]
                    if not body.get("logprobs") or not isinstance(top, int) or not 0 <= top <= 20:
                        raise BadRequest(
                            400, "top_logprobs must be an integer 0-20 and needs logprobs=true"
                        )
                max_tokens = body.get("max_tokens", 16)
                if not isinstance(max_tokens, int) or max_tokens < 1:
                    raise BadRequest(400, "max_tokens must be a positive integer")
                text = "\n".join(texts)
                if (
                    b.context_limit is not None
                    and self._prompt_tokens(text, images, videos) > b.context_limit
                ):
                    raise BadRequest(
                        400, f"This model's maximum context length is {b.context_limit} tokens."
                    )
                return text, images, videos

            @staticmethod
            def _prompt_tokens(
                text: str, images: list[np.ndarray], videos: list[dict[str, Any]]
            ) -> int:
                return len(text.split()) + _visual_tokens(images, videos)

            def _completion(
                self,
                body: dict[str, Any],
                text: str,
                images: list[np.ndarray],
                videos: list[dict[str, Any]],
                probe: str,
            ) -> dict[str, Any]:
                b = server.behaviour
                refusal = None
                answer = b.answer(images + [f for v in videos for f in v["frames"]], text)
                if b.refuse_marker in probe:
                    answer, refusal = "", "I can't help with identifying people."
                elif b.empty_marker in probe:
                    answer = ""
                answer = "".join(pieces(answer)[: body.get("max_tokens", 16)]) if answer else answer
                logprobs = None
                if body.get("logprobs") and b.logprobs and answer:
                    top_n = body.get("top_logprobs", 0)
                    logprobs = {
                        "content": logprob_content(
                            answer, label_distribution(answer, b.labels), top_n
                        )
                    }
                completion_tokens = len(pieces(answer)) if answer else 0
                prompt_tokens = self._prompt_tokens(text, images, videos)
                return {
                    "id": f"chatcmpl-{server.calls}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": answer or None,
                                "refusal": refusal,
                            },
                            "logprobs": logprobs,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                        "prompt_tokens_details": {
                            "image_tokens": _visual_tokens(images, []),
                            "video_tokens": _visual_tokens([], videos),
                        },
                    },
                }

        return Handler

"""The direct VLM recognizer: frames → (faces) → prompt → VLM → parsed labels or label scores."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from emovlm.backends.cache import ResponseCache
from emovlm.backends.cached import CachedVLM, Ready
from emovlm.backends.images import crop_box, draw_box, fit_within
from emovlm.backends.loop import LoopThread
from emovlm.backends.vlm import (
    VLM,
    VLM_BACKENDS,
    GenerationSettings,
    Mode,
    VideoInput,
    VLMAnswer,
    VLMRequest,
)
from emovlm.errors import InputError, MediaError
from emovlm.eval.vad import parse_vad
from emovlm.faces.crop import crop_face
from emovlm.faces.registry import get_face_detector
from emovlm.faces.track import track_faces
from emovlm.frames import parse_sampler
from emovlm.labels import LabelSpace, MatchMode
from emovlm.prompts import load_prompt
from emovlm.recognizers.base import (
    SETUP_ERRORS,
    failure,
    predict_in_chunks,
    prepare_each,
    stream_predictions,
)
from emovlm.recognizers.settings import (
    RequestSettings,
    ServedSettings,
    VLMSettings,
    with_settings,
)
from emovlm.thumbnails import EXTRA_KEY as THUMBNAILS_KEY
from emovlm.thumbnails import thumbnail_entries
from emovlm.types import Clip, Cost, Prediction, Sample, Status
from emovlm.video import probe, read_frames
from emovlm.vocab import load_definitions

PersonView = Literal["box", "crop", "crop+full"]

PREPARE_THREADS = 4
"""Threads that decode media, hash requests and read and write the cache while a server works."""
SERVED_WINDOW = 2
"""Samples in flight per request slot against a server: the ones without a slot are prepared and
wait for one, so a finished request is replaced on the event loop at once."""
_DETECTING = threading.Lock()


@dataclass
class _Prepared:
    """One sample turned into a VLM request, with the seconds and facts gathered on the way."""

    sample: Sample
    request: VLMRequest
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _softmax(logprobs: np.ndarray) -> np.ndarray:
    shifted = np.exp(logprobs - logprobs.max())
    return shifted / shifted.sum()


@dataclass(frozen=True)
class AnswerReader:
    """Turns a model's answer into a Prediction: parsed text (generate) or label scores (score).

    `match` is the parser's mode ("word", or "contains" as Paper B's scoring script). With `vad`,
    valence/arousal/dominance ratings are read into `extra["vad"]` and cut from the text before
    the labels are parsed. In score mode a multi-label space answers its `max_labels` most
    probable labels (scores keep every label's probability, for mAP).
    """

    label_space: LabelSpace
    mode: Mode = "generate"
    match: MatchMode = "word"
    max_labels: int = 6
    vad: bool = False

    def prediction(
        self, sid: str, answer: VLMAnswer, *, cost: Cost, extra: Mapping[str, Any]
    ) -> Prediction:
        """The Prediction for one answer, stored with its cost and extra facts."""
        extra = {**extra, "cached": answer.cached}
        if answer.error:
            return Prediction.failed(sid, answer.error, cost)
        if answer.refusal:
            return Prediction(
                sid,
                raw=answer.refusal,
                status=Status.UNPARSED,
                reason=f"refused: {answer.refusal}",
                cost=cost,
                extra=extra,
            )
        if self.mode == "score":
            return self._scored(sid, answer, cost, extra)
        if not answer.text:
            return Prediction(
                sid, status=Status.UNPARSED, reason="empty answer", cost=cost, extra=extra
            )
        text = answer.text
        if self.vad:
            extra["vad"], text = parse_vad(text)
        parsed = self.label_space.parse(text, match=self.match)
        extra["parse"] = parsed.to_json()
        reason = ""
        if parsed.status is Status.UNPARSED:
            cut = " (cut off by --max-new-tokens)" if answer.finish_reason == "length" else ""
            reason = f"the answer names no emotion{cut}"
        elif parsed.status is Status.OUT_OF_SET:
            reason = f"{parsed.labels[0]!r} is not a label of {self.label_space.name}"
        return Prediction(
            sid,
            labels=parsed.labels,
            raw=answer.text,
            status=parsed.status,
            reason=reason,
            cost=cost,
            extra=extra,
        )

    def _scored(self, sid: str, answer: VLMAnswer, cost: Cost, extra: dict[str, Any]) -> Prediction:
        labels = self.label_space.labels
        logprobs = np.array([answer.label_logprobs[label] for label in labels], dtype=np.float64)
        probs = _softmax(logprobs)
        order = np.argsort(-probs, kind="stable")
        if self.label_space.multi_label:
            order = order[: self.max_labels]
        return Prediction(
            sid,
            labels=tuple(labels[j] for j in order),
            scores={label: float(p) for label, p in zip(labels, probs, strict=True)},
            raw=answer.text,
            status=Status.OK,
            cost=cost,
            extra={
                **extra,
                "label_logprobs": {lab: float(v) for lab, v in zip(labels, logprobs, strict=True)},
            },
        )


@with_settings(VLMSettings)
class VLMRecognizer:
    """Ask a vision-language model, local (`transformers`) or served (`openai`), for the emotion.

    `mode="generate"` parses free text with the label space; `mode="score"` ranks every label by
    the model's probability of answering it. Deterministic answers (temperature 0) are cached in
    `cache_dir` (default: the emovlm cache folder), so a rerun makes no model call. `concurrency`
    is the number of requests in flight for servers and the batch size for local models: `stream`
    keeps `concurrency` requests at a server and as many samples prepared behind them (a new one
    is sent as soon as one is answered, each answer cached on arrival) and feeds local models
    micro-batches. For samples with a person box the person is shown by a red box drawn on the
    image (`person="box"`), by cropping to the box (`person="crop"`), or by both: the full image
    with the red box, then the crop (`person="crop+full"`). `match`, `vad` and the score-mode label
    count are those of `AnswerReader`.
    """

    name = "vlm"

    def __init__(
        self, label_space: LabelSpace, settings: VLMSettings | None = None, **options: Any
    ) -> None:
        self.spec = s = VLMSettings.of(settings, options)
        if not s.model:
            raise InputError(
                f"--recognizer {self.name} needs --model (a model folder, id or served model name)"
            )
        self.label_space = label_space
        self.backend_name, self.model = s.backend, s.model
        self.mode: Mode = s.mode
        self.sampler = parse_sampler(s.frames)
        self.faces, self.face_step = s.faces, s.face_step
        self.detector = get_face_detector(s.faces, device=s.device) if s.faces != "none" else None
        self.template = load_prompt(
            s.prompt or ("contextual" if label_space.multi_label else "dfer")
        )
        self.settings = GenerationSettings(
            max_new_tokens=s.max_new_tokens, temperature=s.temperature
        )
        self.image_size, self.person, self.max_labels = s.image_size, s.person, s.max_labels
        self.reader = AnswerReader(label_space, s.mode, s.match, s.max_labels, s.vad)
        self.definitions = load_definitions(label_space.name)
        self.concurrency = s.concurrency
        self.backend: VLM = build_backend(s)
        self.vlm = CachedVLM(self.backend, ResponseCache(s.cache_dir) if s.cache else None)

    @property
    def batch_size(self) -> int:
        """How many samples one `predict` call should get to keep `concurrency` requests busy."""
        return max(32, 4 * self.concurrency)

    def config(self) -> Mapping[str, Any]:
        """Settings that determine the answers (no secrets: only the API key variable's name)."""
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            "backend": self.backend_name,
            "model": self.model,
            "model_fingerprint": dict(self.backend.fingerprint()),
            "api_key_env": self.spec.api_key_env if self.backend_name == "openai" else None,
            "adapter": self.spec.adapter,
            "dtype": self.spec.dtype if self.backend_name == "transformers" else None,
            "frames": str(self.sampler),
            "faces": self.faces,
            "face_step": self.face_step,
            "mode": self.mode,
            "prompt": self.template.name,
            "prompt_sha256": hashlib.sha256(self.template.source.encode()).hexdigest(),
            "max_new_tokens": self.settings.max_new_tokens,
            "temperature": self.settings.temperature,
            "image_size": self.image_size,
            "person": self.person,
            "max_labels": self.max_labels,
            "match": self.reader.match,
            "vad": self.reader.vad,
            "settings": self.spec.recorded(),
        }

    def run_stats(self) -> Mapping[str, Any]:
        """How the backend's requests went (its `stats`, when it keeps any)."""
        stats = getattr(self.backend, "stats", None)
        stats = stats() if callable(stats) else stats
        return dict(stats) if stats else {}

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """One Prediction per sample, in order; per-sample problems become failed/unparsed rows."""
        if self.vlm.streams:
            done = {p.sample_id: p for p in self._stream_served(samples)}
            return [done[s.id] for s in samples]
        return predict_in_chunks(samples, self.batch_size, self._predict_chunk)

    def stream(self, samples: Iterable[Sample]) -> Iterator[Prediction]:
        """Each sample's Prediction as soon as it is done (servers), or micro-batch by micro-batch."""
        if self.vlm.streams:
            return self._stream_served(samples)
        return stream_predictions(self, samples, self.concurrency)

    def _stream_served(self, samples: Iterable[Sample]) -> Iterator[Prediction]:
        """A window of SERVED_WINDOW × `concurrency` samples in flight (the backend sends at most
        `concurrency` requests at once), predictions in completion order."""
        iterator = iter(samples)
        finished: queue.SimpleQueue[Future[Prediction]] = queue.SimpleQueue()
        with LoopThread() as loop, ThreadPoolExecutor(PREPARE_THREADS) as pool:
            client = loop.run(_made(self.vlm.client))
            pending: set[Future[Prediction]] = set()
            try:
                while True:
                    while len(pending) < SERVED_WINDOW * self.concurrency:
                        sample = next(iterator, None)
                        if sample is None:
                            break
                        future = loop.submit(self._served(sample, client, pool))
                        future.add_done_callback(finished.put)
                        pending.add(future)
                    if not pending:
                        return
                    future = finished.get()
                    pending.discard(future)
                    yield future.result()
            finally:
                for future in pending:
                    future.cancel()
                loop.run(client.close())

    async def _served(self, sample: Sample, client: Any, pool: ThreadPoolExecutor) -> Prediction:
        """One sample: prepared on `pool`, answered (or read from the cache), parsed."""
        started = time.perf_counter()
        try:
            labels = self.label_space.labels if self.mode == "score" else None
            item, ready = await asyncio.get_running_loop().run_in_executor(
                pool, self._prepare_ready, sample, labels
            )
            answer = await self.vlm.answer(
                client, self.mode, item.request, self.settings, labels, pool, ready
            )
            cost = answer.cost + Cost(seconds=item.seconds)
            return self.prediction(sample.id, answer, cost=cost, extra=item.extra)
        except MediaError as exc:
            return Prediction.failed(
                sample.id, str(exc), Cost(seconds=time.perf_counter() - started)
            )
        except SETUP_ERRORS:
            raise
        except Exception as exc:
            return failure(sample, exc, started)

    def _prepare_ready(
        self, sample: Sample, labels: Sequence[str] | None
    ) -> tuple[_Prepared, Ready]:
        """On a pool thread, in one job: the sample's request, its cache lookup and messages."""
        item = self._prepare_in_pool(sample)
        return item, self.vlm.ready(self.mode, item.request, self.settings, labels)

    def _prepare_in_pool(self, sample: Sample) -> _Prepared:
        """`_prepare` on a pool thread; face detection (OpenCV's is not thread-safe) one at a time."""
        if self.detector is None:
            return self._prepare(sample)
        with _DETECTING:
            return self._prepare(sample)

    def _predict_chunk(self, samples: Sequence[Sample]) -> list[Prediction]:
        results, prepared = prepare_each(samples, self._prepare)
        answers = self.ask([p.request for _, p in prepared])
        for (i, item), answer in zip(prepared, answers, strict=True):
            cost = answer.cost + Cost(seconds=item.seconds)
            results[i] = self.prediction(item.sample.id, answer, cost=cost, extra=item.extra)
        return [results[i] for i in range(len(samples))]

    def ask(self, requests: Sequence[VLMRequest]) -> list[VLMAnswer]:
        """The model's answers to `requests` in this recognizer's mode (free text or label scores)."""
        if self.mode == "score":
            return self.vlm.score(requests, self.label_space.labels, self.settings)
        return self.vlm.generate(requests, self.settings)

    # ---- sample → request -------------------------------------------------------------------

    def _prepare(self, sample: Sample) -> _Prepared:
        started = time.perf_counter()
        info = probe(sample.media)
        indices = self.sampler.indices(info.frame_count, info.fps) if info.frame_count > 1 else [0]
        clip = read_frames(sample.media, indices)
        images, extra = self.view(sample, clip)
        extra[THUMBNAILS_KEY] = thumbnail_entries(
            [
                (f"frame {f.index} · {f.time:.2f} s", image)
                for f, image in zip(clip.frames, images, strict=True)
            ]
        )
        rate = len(images) / clip.duration if clip.duration > 0 else clip.fps
        visuals = [visual_part(images, rate)]
        if self.person == "crop+full" and sample.box is not None and self.detector is None:
            crops, _ = self.view(sample, clip, person="crop")
            visuals.append(visual_part(crops, rate))
        request = VLMRequest((*visuals, self.question(sample, len(images))))
        return _Prepared(sample, request, time.perf_counter() - started, extra)

    def question(self, sample: Sample, frames: int) -> str:
        """The prompt text asked about `sample` shown in `frames` frames."""
        return self.template.render(
            labels=list(self.label_space.labels),
            media="video" if frames > 1 else "image",
            num_frames=frames,
            multi_label=self.label_space.multi_label,
            dataset=self.label_space.name,
            person=self.person if sample.box is not None and self.detector is None else None,
            k=self.max_labels,
            definitions=self.definitions,
            vad=self.reader.vad,
        )

    def view(
        self, sample: Sample, clip: Clip, person: PersonView | None = None
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        """The clip's frames as the model sees them (faces or person shown, resized), with counts.

        `person` overrides the recognizer's person view; "crop+full" shows the red box here (the
        crop is the request's second visual part).
        """
        images = [frame.image for frame in clip.frames]
        extra: dict[str, Any] = {"frames_sampled": len(images)}
        if self.detector is not None:
            tracked = track_faces(images, self.detector, step=self.face_step, person_box=sample.box)
            images = [
                crop_face(img, f) if f is not None else img
                for img, f in zip(images, tracked, strict=True)
            ]
            extra["frames_with_face"] = sum(f is not None for f in tracked)
        elif sample.box is not None:
            show = crop_box if (person or self.person) == "crop" else draw_box
            images = [show(img, sample.box) for img in images]
        return [fit_within(img, self.image_size) for img in images], extra

    # ---- answer → prediction ----------------------------------------------------------------

    def prediction(
        self, sid: str, answer: VLMAnswer, *, cost: Cost, extra: Mapping[str, Any]
    ) -> Prediction:
        """The Prediction for one answer (parsed text or label scores), stored with cost and extra."""
        return self.reader.prediction(sid, answer, cost=cost, extra=extra)


class ContextualVLMRecognizer(VLMRecognizer):
    """The VLM recognizer on people in context (EMOTIC), recorded under its own name."""

    name = "contextual-vlm"


async def _made(make: Any) -> Any:
    """`make()` called on the event loop (async clients bind to the loop they are made on)."""
    return make()


def visual_part(images: Sequence[np.ndarray], fps: float) -> np.ndarray | VideoInput:
    """One image as itself; several as a video sampled at `fps` frames per second."""
    return images[0] if len(images) == 1 else VideoInput(tuple(images), fps=fps)


def build_backend(settings: VLMSettings) -> VLM:
    """The VLM backend a recognizer's settings name, with the settings that apply to it."""
    s = settings
    factory = VLM_BACKENDS.get(s.backend)
    served = {
        "--frames-as": s.frames_as != "images",
        "--rpm": s.rpm is not None,
        "--tpm": s.tpm is not None,
        "--model-revision": s.model_revision is not None,
    }
    wrong = [flag for flag, given in served.items() if given and s.backend != "openai"]
    if wrong:
        raise InputError(f"{', '.join(wrong)} apply to --backend openai only, not {s.backend}")
    if s.backend == "openai":
        if not s.base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if s.adapter:
            raise InputError(
                "--adapter applies to --backend transformers only; load it in the server"
            )
        return factory(
            s.model,
            base_url=s.base_url,
            api_key_env=s.api_key_env,
            **s.values_of(RequestSettings, ServedSettings),
            image_size=s.image_size,
            revision=s.model_revision,
        )
    if s.base_url:
        raise InputError(f"--base-url applies to --backend openai only, not {s.backend}")
    return factory(
        s.model, adapter=s.adapter, device=s.device, dtype=s.dtype, batch_size=s.concurrency
    )

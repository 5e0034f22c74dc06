"""The contextual VLM on EMOTIC samples: person views, prompt variants and answer modes, on a real
photo sent to a real local OpenAI-compatible server that records what it receives."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.types import Sample, Status
from emovlm.vocab import load_definitions
from openai_server import Behaviour, FakeOpenAIServer

os.environ["HF_HUB_OFFLINE"] = "1"
EMOTIC = get_label_space("emotic")
BOX = (160.0, 40.0, 360.0, 240.0)  # the astronaut's head and shoulders, in the 512×512 photo
PROBE = "Reply with one word."


def is_red(pixel: np.ndarray) -> bool:
    r, g, b = (int(v) for v in pixel)
    return r > 180 and g < 80 and b < 80


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.behaviour = Behaviour(
        labels=EMOTIC.labels, answer=lambda images, text: "happiness, excitement, confidence"
    )
    server.reset()
    return server


@pytest.fixture(scope="module")
def photo(asset: Callable[[str], Path]) -> Sample:
    return Sample("astronaut#0", asset("astronaut"), labels=("happiness", "confidence"), box=BOX)


def ask(server: FakeOpenAIServer, sample: Sample, **options: object) -> tuple[object, list[dict]]:
    """Predict one sample on the test server; the prediction and the questions it received."""
    recognizer = VLMRecognizer(
        EMOTIC,
        backend="openai",
        model="tiny-vlm",
        base_url=server.url,
        cache=False,
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )
    [prediction] = recognizer.predict([sample])
    return prediction, [r for r in server.received if r["text"] != PROBE]


def test_the_red_box_is_drawn_where_the_box_is(fresh: FakeOpenAIServer, photo: Sample) -> None:
    prediction, [request] = ask(fresh, photo, image_size=512)
    assert prediction.labels == ("happiness", "excitement", "confidence")
    [image] = request["images"]
    assert image.shape == (512, 512, 3)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    middle_x, middle_y = (x1 + x2) // 2, (y1 + y2) // 2
    assert is_red(image[y1, middle_x]) and is_red(image[y2, middle_x])
    assert is_red(image[middle_y, x1]) and is_red(image[middle_y, x2])
    assert not is_red(image[y1 + 20, middle_x]) and not is_red(image[y1 - 20, middle_x])
    assert "red box" in request["text"] and "whole image as context" in request["text"]


def test_the_crop_is_the_box_widened_by_a_tenth_per_side(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    _, [request] = ask(fresh, photo, person="crop", image_size=512)
    [image] = request["images"]
    assert image.shape == (240, 240, 3)  # 200 px + 2 × 20 px margin each way
    assert not any(is_red(p) for p in image.reshape(-1, 3)[::97])
    assert "red box" not in request["text"]


def test_crop_plus_full_sends_the_boxed_scene_then_the_crop(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    _, [request] = ask(fresh, photo, person="crop+full", image_size=256)
    full, crop = request["images"]
    assert full.shape == (256, 256, 3) and crop.shape == (240, 240, 3)
    assert is_red(full[20, 130])  # the box's top edge, at half scale
    assert "first image shows the whole scene" in request["text"]
    assert "second image shows that person up close" in request["text"]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("contextual", "Answer with every emotion from the list that applies"),
        ("contextual-topk", "Answer with up to 6 emotions"),
        ("contextual-definitions", "- yearning: " + load_definitions("emotic")["yearning"]),
    ],
)
def test_prompt_variants_list_every_category(
    fresh: FakeOpenAIServer, photo: Sample, prompt: str, expected: str
) -> None:
    _, [request] = ask(fresh, photo, prompt=prompt)
    assert expected in request["text"]
    assert all(label in request["text"] for label in EMOTIC.labels)


def test_definitions_in_the_template_match_the_data_file(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    _, [request] = ask(fresh, photo, prompt="contextual-definitions")
    for label, definition in load_definitions("emotic").items():
        assert f"- {label}: {definition}" in request["text"]


def test_vad_is_asked_for_and_read_without_disturbing_the_labels(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    fresh.behaviour.answer = lambda images, text: (
        "happiness, confidence\nvalence: 8, arousal: 6, dominance: 7"
    )
    prediction, [request] = ask(fresh, photo, prompt="contextual-topk", vad=True, max_new_tokens=64)
    assert "valence: N, arousal: N, dominance: N" in request["text"]
    assert prediction.extra["vad"] == (8.0, 6.0, 7.0)
    assert prediction.labels == ("happiness", "confidence") and prediction.status is Status.OK


def test_score_mode_answers_the_top_k_and_scores_every_category_for_map(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    fresh.behaviour.answer = lambda images, text: "happiness"
    prediction, _ = ask(fresh, photo, mode="score", max_labels=3)
    assert prediction.status is Status.OK and len(prediction.labels) == 3
    assert prediction.labels[0] == "happiness"
    assert set(prediction.scores) == set(EMOTIC.labels)
    assert sum(prediction.scores.values()) == pytest.approx(1.0)
    metrics = score_predictions([photo.labels], [prediction], EMOTIC, n_bootstrap=0)
    assert metrics["per_class"]["happiness"]["ap"] == 1.0 and "map_emotic" in metrics


def test_contains_matching_counts_a_label_inside_a_longer_word(
    fresh: FakeOpenAIServer, photo: Sample
) -> None:
    fresh.behaviour.answer = lambda images, text: "painful and fearful"
    word, _ = ask(fresh, photo)
    contains, _ = ask(fresh, photo, match="contains")
    assert "pain" not in word.labels and "fear" in word.labels  # "fearful" is a synonym of fear
    assert contains.labels == ("pain", "fear")

"""NarraCap: zero-shot CLIP picks over the vocabularies, worded as a caption, then label picking.

CLIP is a tiny random model of the real architecture (transformers, and open_clip when
installed); the text LLM stage runs on a real local OpenAI-compatible server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from emovlm.backends.clip import build_clip, zero_shot_probabilities
from emovlm.backends.images import crop_box
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.recognizers.narracap import CLIP_TEXTS, NarraCapRecognizer, kept_signals
from emovlm.types import Sample, Status
from emovlm.video import load_image
from emovlm.vocab import load_narracap_vocabulary
from openai_server import Behaviour, FakeOpenAIServer
from tiny_clip import build_tiny_clip, build_tiny_open_clip

os.environ["HF_HUB_OFFLINE"] = "1"
EMOTIC = get_label_space("emotic")
PROBE = "Reply with one word."
BOX = (160.0, 40.0, 360.0, 240.0)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    behaviour = Behaviour(
        models=("text-llm",), vision=False, answer=lambda images, text: "peace, engagement"
    )
    with FakeOpenAIServer(behaviour, lifetime=300) as srv:
        yield srv


@pytest.fixture(scope="module")
def photo(asset: Callable[[str], Path]) -> Sample:
    return Sample("astronaut#0", asset("astronaut"), labels=("happiness",), box=BOX)


def recognizer(server: FakeOpenAIServer, clip: Path, **options: object) -> NarraCapRecognizer:
    settings: dict[str, object] = {
        "clip_model": str(clip),
        "llm_backend": "openai",
        "llm_model": "text-llm",
        "llm_base_url": server.url,
        "cache": False,
        "max_retries": 0,
    }
    settings.update(options)
    return NarraCapRecognizer(EMOTIC, **settings)  # type: ignore[arg-type]


def test_kept_signals_are_those_above_mean_plus_k_std_most_probable_first() -> None:
    probabilities = np.array([0.01, 0.5, 0.02, 0.3, 0.01, 0.02, 0.01, 0.13])
    signals = [f"s{i}" for i in range(8)]
    mean, std = probabilities.mean(), probabilities.std()
    assert list(kept_signals(probabilities, signals, 1.0)) == ["s1", "s3"]
    assert mean + std < 0.3 and mean + 2 * std > 0.3
    assert list(kept_signals(probabilities, signals, 2.0)) == ["s1"]
    assert kept_signals(probabilities, signals, 10.0) == {}


def test_the_caption_follows_clip_on_the_crop_and_on_the_whole_image(
    server: FakeOpenAIServer, clip_folder: Path, photo: Sample
) -> None:
    server.reset()
    [prediction] = recognizer(server, clip_folder, signal_std=1.0).predict([photo])
    # the same choices, computed here from the real CLIP backend on the crop and the full image
    clip = build_clip("transformers", str(clip_folder))
    vocab = load_narracap_vocabulary()
    scene = load_image(photo.media)
    person = crop_box(scene, BOX)

    def best(image: np.ndarray, part: str, words: list[str]) -> tuple[str, np.ndarray]:
        texts = clip.text_features([CLIP_TEXTS[part].format(w) for w in words])
        probabilities = zero_shot_probabilities(clip, clip.image_features([image]), texts)[0]
        return words[int(probabilities.argmax())], probabilities

    who, _ = best(person, "who", list(vocab.who))
    where, _ = best(scene, "where", list(vocab.where))
    action, _ = best(scene, "action", list(vocab.action))
    _, signal_probabilities = best(person, "signals", list(vocab.signals))
    signals = kept_signals(signal_probabilities, vocab.signals, 1.0)
    assert signals, "with k = 1 some signal is always above mean + std"
    expected = f"This person is {who} who {action} {where}." + "".join(
        f" {vocab.who[who]} {s}." for s in signals
    )
    assert prediction.extra["description"] == expected
    assert prediction.extra["narracap"]["signals"] == pytest.approx(signals)
    [question] = [r for r in server.received if r["text"] != PROBE]
    assert expected in question["text"] and question["images"] == []
    assert prediction.labels == ("peace", "engagement") and prediction.status is Status.OK


def test_a_user_vocabulary_folder_replaces_only_the_files_it_has(
    server: FakeOpenAIServer, clip_folder: Path, photo: Sample, tmp_path: Path
) -> None:
    (tmp_path / "who.yaml").write_text("an astronaut: He\n", encoding="utf-8")
    (tmp_path / "where.txt").write_text("# one place\nin outer space\n", encoding="utf-8")
    model = recognizer(server, clip_folder, vocabulary=str(tmp_path), signal_std=50.0)
    [prediction] = model.predict([photo])
    action = prediction.extra["narracap"]["action"]
    assert (
        prediction.extra["description"]
        == f"This person is an astronaut who {action} in outer space."
    )
    assert action in load_narracap_vocabulary().action
    sources = model.config()["captioner"]["vocabulary"]
    assert sources["who.yaml"] == str(tmp_path / "who.yaml")
    assert sources["signals.txt"].endswith("narracap/signals.txt")


def test_unreadable_media_fail_without_an_llm_call(
    server: FakeOpenAIServer, clip_folder: Path, photo: Sample, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no png")
    server.reset()
    failed, fine = recognizer(server, clip_folder).predict([Sample("x#0", broken, box=BOX), photo])
    assert failed.status is Status.FAILED and fine.status is Status.OK
    assert len([r for r in server.received if r["text"] != PROBE]) == 1


def test_open_clip_models_caption_too(
    server: FakeOpenAIServer, photo: Sample, tmp_path: Path
) -> None:
    pytest.importorskip("open_clip")
    folder = build_tiny_open_clip(tmp_path / "open-clip")
    model = recognizer(server, folder, clip_backend="open_clip")
    [prediction] = model.predict([photo])
    assert prediction.extra["description"].startswith("This person is ")
    assert model.config()["captioner"]["clip"]["backend"] == "open_clip"


def test_clip_weights_must_be_given_and_settings_checked(
    server: FakeOpenAIServer, clip_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="--clip-model"):
        NarraCapRecognizer(EMOTIC, llm_backend="openai", llm_model="m", llm_base_url=server.url)
    with pytest.raises(InputError, match="--signal-std"):
        recognizer(server, clip_folder, signal_std=-1.0)
    with pytest.raises(InputError, match="holds none of"):
        recognizer(server, clip_folder, vocabulary=str(tmp_path))
    with pytest.raises(InputError, match="open_clip_config.json"):
        recognizer(server, tmp_path, clip_backend="open_clip")

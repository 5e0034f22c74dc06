"""Images and frame folders: RGB loading, natural frame order, default and given fps, failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emovlm.errors import InputError, MediaError
from emovlm.video import DEFAULT_FPS, iter_frames, load_image, probe, read_frames


def grey_frame(level: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    """A flat grey RGB image whose level identifies it."""
    return Image.new("RGB", size, (level, level, level))


def level_of(image: np.ndarray) -> int:
    """The grey level a flat decoded frame shows."""
    return round(float(image.mean()))


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    """A DFEW-style folder: 12 frames named img_1.png .. img_12.png plus files to ignore."""
    folder = tmp_path / "clip 0001"
    folder.mkdir()
    for number in range(1, 13):
        grey_frame(number * 20).save(folder / f"img_{number}.png")
    (folder / "._img_1.png").write_bytes(b"macOS resource fork, not an image")
    (folder / "labels.txt").write_text("happy\n")
    (folder / "thumbs").mkdir()
    return folder


def test_frame_folder_is_ordered_by_the_number_in_each_name(frame_folder: Path) -> None:
    frames = list(iter_frames(frame_folder))
    assert [frame.index for frame in frames] == list(range(12))
    assert [level_of(frame.image) for frame in frames] == [n * 20 for n in range(1, 13)]


def test_frame_folder_defaults_to_25_fps_and_accepts_another(frame_folder: Path) -> None:
    info = probe(frame_folder)
    assert DEFAULT_FPS == 25.0
    assert (info.kind, info.frame_count, info.fps) == ("frames", 12, 25.0)
    assert info.duration == pytest.approx(12 / 25)
    assert (info.width, info.height) == (32, 24)
    assert probe(frame_folder, fps=30).duration == pytest.approx(12 / 30)
    clip = read_frames(frame_folder, [10], fps=10)
    assert (clip.fps, clip.duration, clip.frames[0].time) == (10.0, 1.2, 1.0)
    assert [frame.time for frame in iter_frames(frame_folder, step=5)] == [0.0, 0.2, 0.4]


def test_frame_folder_read_frames_keeps_request_order_and_repeats(frame_folder: Path) -> None:
    clip = read_frames(frame_folder, [11, 0, 0, 5])
    assert [frame.index for frame in clip.frames] == [11, 0, 0, 5]
    assert [level_of(frame.image) for frame in clip.frames] == [240, 20, 20, 120]
    clip.frames[1].image[:] = 0
    assert level_of(clip.frames[2].image) == 20
    assert clip.frame_count == 12


def test_zero_padded_jpeg_frames(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in (3, 1, 2, 10):
        grey_frame(number * 20).save(folder / f"{number:05d}.jpg", quality=95)
    levels = [level_of(frame.image) for frame in iter_frames(folder)]
    assert levels == pytest.approx([20, 40, 60, 200], abs=2)


def test_frame_folder_failures_name_the_folder(frame_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"12.*12 frames") as raised:
        read_frames(frame_folder, [12])
    assert str(frame_folder) in str(raised.value)
    empty = tmp_path / "empty folder"
    empty.mkdir()
    with pytest.raises(MediaError, match="no frame images") as raised:
        probe(empty)
    assert str(empty) in str(raised.value)
    with pytest.raises(InputError, match="fps"):
        probe(frame_folder, fps=0)


def test_single_image_is_a_one_frame_clip(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    grey_frame(90, (40, 30)).save(path)
    info = probe(path)
    assert (info.kind, info.frame_count, info.fps, info.width, info.height) == (
        "image",
        1,
        25.0,
        40,
        30,
    )
    assert info.duration == pytest.approx(1 / 25)
    clip = read_frames(path, [0, 0])
    assert [(frame.index, frame.time) for frame in clip.frames] == [(0, 0.0), (0, 0.0)]
    assert clip.frames[0].image.shape == (30, 40, 3)
    assert [frame.index for frame in iter_frames(path)] == [0]
    with pytest.raises(MediaError, match="1 frames"):
        read_frames(path, [1])


def test_load_image_returns_rgb_uint8_exactly_for_png(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    image = load_image(tmp_path / "noise.png")
    assert image.dtype == np.uint8 and image.flags.writeable
    assert np.array_equal(image, pixels)


def test_load_image_expands_grey_and_drops_alpha(tmp_path: Path) -> None:
    Image.new("L", (8, 6), 77).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (6, 8, 3) and (grey == 77).all()

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 0  # fully transparent: colour must survive, not turn black or white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert (load_image(tmp_path / "alpha.png") == (10, 20, 30)).all()

    Image.new("LA", (8, 6), (200, 0)).save(tmp_path / "grey_alpha.png")
    assert (load_image(tmp_path / "grey_alpha.png") == 200).all()

    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)
    assert (load_image(tmp_path / "palette.png") == (255, 128, 0)).all()


def test_load_image_scales_16_bit_grey_instead_of_clipping(tmp_path: Path) -> None:
    deep = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert load_image(tmp_path / "deep.png")[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied_to_pixels_and_size(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = 255  # white band on the stored left edge
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # display turned 90 degrees clockwise
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    info = probe(tmp_path / "phone.jpg")
    assert (info.width, info.height) == (20, 40)
    shown = load_image(tmp_path / "phone.jpg")
    assert shown.shape == (40, 20, 3)
    assert shown[:8].mean() > 200 and shown[12:].mean() < 40  # the band is now on top


@pytest.mark.parametrize("name", ["broken.png", "broken.jpg"])
def test_truncated_or_fake_images_raise_media_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MediaError) as raised:
        read_frames(path, [0])
    assert str(path) in str(raised.value) and "re-download" in str(raised.value)
    fake = tmp_path / f"fake_{name}"
    fake.write_text("not an image")
    with pytest.raises(MediaError) as raised:
        load_image(fake)
    assert str(fake) in str(raised.value)


def test_non_ascii_and_space_names_work_for_images_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "sujet é 表情"
    folder.mkdir()
    grey_frame(60).save(folder / "frame 1 ü.png")
    grey_frame(80).save(folder / "frame 2 ü.png")
    assert [level_of(frame.image) for frame in iter_frames(folder)] == [60, 80]
    assert level_of(load_image(folder / "frame 2 ü.png")) == 80

"""Video decoding on real files written with PyAV: right frames, times, counts, and clear failures."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from emovlm import video
from emovlm.errors import InputError, MediaError
from emovlm.frames import uniform
from emovlm.types import Frame
from emovlm.video import iter_frames, probe, read_frames

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 25, 75
BAR = WIDTH // 8

# (file name, codec, extra encoder options): the containers and codecs DFER datasets ship in
FORMATS = [
    ("clip.mp4", "libx264", {}),
    ("clip_mpeg4.mp4", "mpeg4", {"bf": "2"}),
    ("clip.avi", "mjpeg", {}),
    ("clip.mkv", "libx264", {}),
    ("clip.webm", "libvpx-vp9", {}),
    ("clip.mov", "libx264", {}),
    ("clip.ts", "libx264", {}),
]


def barcode(index: int) -> np.ndarray:
    """A frame showing `index` in binary as 8 black/white vertical bars (bit 0 leftmost)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            image[:, bit * BAR : (bit + 1) * BAR] = 255
    return image


def read_barcode(image: np.ndarray) -> int:
    """The index a decoded barcode frame shows (bar centres only, to survive compression)."""
    bars = [image[:, bit * BAR + 2 : (bit + 1) * BAR - 2].mean() > 128 for bit in range(8)]
    return sum(1 << bit for bit, white in enumerate(bars) if white)


def write_video(
    path: Path,
    codec: str = "libx264",
    frames: int = FRAMES,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
    images: list[np.ndarray] | None = None,
    rotation: int = 0,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode barcode frames (or `images`) at FPS into `path` with PyAV."""
    with av.open(
        str(path), "w", format=container_format, options=container_options or {}
    ) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.options = options or {}
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            image = images[index] if images is not None else barcode(index)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(params=FORMATS, ids=[name for name, _, _ in FORMATS])
def clip(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A 3 s, 25 fps, 64x48 barcode video in one of the supported containers."""
    name, codec, options = request.param
    return write_video(tmp_path / name, codec, options=options)


def test_probe_reports_frames_rate_duration_and_size(clip: Path) -> None:
    info = probe(clip)
    assert (info.kind, info.frame_count, info.fps) == ("video", FRAMES, FPS)
    assert info.duration == pytest.approx(FRAMES / FPS, abs=1e-6)
    assert (info.width, info.height, info.path) == (WIDTH, HEIGHT, clip)


def test_iter_frames_yields_every_frame_once_in_time_order(clip: Path) -> None:
    frames = list(iter_frames(clip))
    assert [frame.index for frame in frames] == list(range(FRAMES))
    assert [read_barcode(frame.image) for frame in frames] == list(range(FRAMES))
    assert [frame.time for frame in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert all(frame.image.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    assert all(frame.image.dtype == np.uint8 for frame in frames)


def test_read_frames_returns_unsorted_and_repeated_indices_in_request_order(clip: Path) -> None:
    wanted = [70, 3, 3, 40, 0, 74, 41]
    clip_frames = read_frames(clip, wanted)
    assert [frame.index for frame in clip_frames.frames] == wanted
    assert [read_barcode(frame.image) for frame in clip_frames.frames] == wanted
    assert [frame.time for frame in clip_frames.frames] == pytest.approx([i / FPS for i in wanted])
    assert (clip_frames.fps, clip_frames.frame_count) == (FPS, FRAMES)
    assert clip_frames.duration == pytest.approx(FRAMES / FPS)


def test_repeated_indices_are_independent_arrays(clip: Path) -> None:
    first, again = read_frames(clip, [5, 5]).frames
    first.image[:] = 0
    assert read_barcode(again.image) == 5


def test_iter_frames_step_takes_every_nth_frame(clip: Path) -> None:
    frames = list(iter_frames(clip, step=10))
    assert [frame.index for frame in frames] == list(range(0, FRAMES, 10))
    assert [read_barcode(frame.image) for frame in frames] == list(range(0, FRAMES, 10))


def test_read_frames_of_nothing_is_an_empty_clip(clip: Path) -> None:
    empty = read_frames(clip, [])
    assert (empty.frames, empty.frame_count) == ((), FRAMES)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 noisy frames with a keyframe every 20 (x264 with B-frames)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) for _ in range(600)]
    for index, image in enumerate(images):  # keep the barcode readable in the top rows
        image[:16] = barcode(index % 256)[:16]
    path = tmp_path_factory.mktemp("long") / "long clip.mp4"
    return write_video(path, frames=600, images=images, options={"g": "20", "bf": "2"})


def decoded_frame_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the frames the decoder produces during the test (one item per frame)."""
    produced: list[int] = []
    frames = video._VideoFile.frames

    def counting(self: video._VideoFile):
        for item in frames(self):
            produced.append(item[0])
            yield item

    monkeypatch.setattr(video._VideoFile, "frames", counting)
    return produced


def test_sparse_reads_seek_instead_of_decoding_the_whole_file(
    long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = [590, 15, 300, 450, 75, 525, 225, 150]
    produced = decoded_frame_counter(monkeypatch)
    frames = read_frames(long_clip, wanted).frames
    assert [frame.index for frame in frames] == wanted
    assert [read_barcode(frame.image) for frame in frames] == [i % 256 for i in wanted]
    assert len(produced) < 600 // 3


def test_seeking_path_gives_the_same_pixels_as_sequential_decoding(long_clip: Path) -> None:
    wanted = [599, 0, 21, 40, 41, 42, 119, 120, 333, 500]
    sequential = {frame.index: frame for frame in iter_frames(long_clip)}
    for frame in read_frames(long_clip, wanted).frames:
        assert np.array_equal(frame.image, sequential[frame.index].image)
        assert frame.time == sequential[frame.index].time


def test_a_demuxer_that_seeks_past_the_target_falls_back_to_decoding_in_order(
    long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some demuxers land after the asked timestamp; frames must still be the right ones."""
    build_table = video._frame_table

    def table_with_late_seek_points(container, stream):
        table = build_table(container, stream)
        late = [
            video._Keyframe(key.index, later.pts, later.dts)
            for key, later in zip(table.keyframes, table.keyframes[2:], strict=False)
        ]
        return video._FrameTable(table.count, table.pts, tuple(late), table.duration_ts)

    monkeypatch.setattr(video, "_frame_table", table_with_late_seek_points)
    wanted = [300, 45, 520]
    assert [read_barcode(f.image) for f in read_frames(long_clip, wanted).frames] == [
        i % 256 for i in wanted
    ]


def test_raw_stream_without_timestamps_is_indexed_by_decode_order(tmp_path: Path) -> None:
    raw = write_video(tmp_path / "clip.h264", container_format="h264")
    info = probe(raw)
    assert (info.frame_count, info.fps) == (FRAMES, FPS)
    frames = read_frames(raw, [60, 2]).frames
    assert [read_barcode(frame.image) for frame in frames] == [60, 2]
    assert [frame.time for frame in frames] == pytest.approx([60 / FPS, 2 / FPS])


def test_frames_cut_by_an_mp4_edit_list_are_not_counted(tmp_path: Path) -> None:
    """A stream-copied cut (as `ffmpeg -ss -c copy` makes) keeps hidden frames before its start."""
    source = write_video(tmp_path / "source.mp4", options={"g": "30"})
    cut = tmp_path / "cut.mp4"
    hidden = 5
    with av.open(str(source)) as inp, av.open(str(cut), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        shift = hidden * int(1 / (FPS * inp.streams.video[0].time_base))
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, stream
            out.mux(packet)
    assert probe(cut).frame_count == FRAMES - hidden
    frames = list(iter_frames(cut))
    assert [read_barcode(frame.image) for frame in frames] == list(range(hidden, FRAMES))
    assert frames[0].time == 0.0
    assert read_barcode(read_frames(cut, [FRAMES - hidden - 1]).frames[0].image) == FRAMES - 1


def test_display_rotation_is_applied_to_frames_and_size(tmp_path: Path) -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:8] = 255  # white band along the stored top edge
    rotated = write_video(tmp_path / "phone.mp4", frames=3, images=[image] * 3, rotation=90)
    info = probe(rotated)
    assert (info.width, info.height) == (HEIGHT, WIDTH)
    frame = read_frames(rotated, [1]).frames[0].image
    assert frame.shape == (WIDTH, HEIGHT, 3)
    # turned a quarter counter-clockwise: the top band is now the left edge
    assert frame[:, :6].mean() > 200 and frame[:, 10:].mean() < 40


@pytest.mark.parametrize(("name", "codec"), [("colour.mp4", "libx264"), ("colour.avi", "mjpeg")])
def test_decoded_colours_match_the_encoded_rgb(tmp_path: Path, name: str, codec: str) -> None:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128), (250, 220, 10)]
    images = [np.full((HEIGHT, WIDTH, 3), colour, np.uint8) for colour in colours]
    path = write_video(tmp_path / name, codec, frames=len(colours), images=images)
    for frame, colour in zip(iter_frames(path), colours, strict=True):
        assert np.abs(frame.image.astype(int) - colour).max() <= 8


@pytest.mark.parametrize("name", ["feat-video-pexels", "feat-video-single-face"])
def test_grey_from_the_luma_plane_matches_the_grey_of_the_rgb_frame(
    asset: Callable[[str], Path], name: str
) -> None:
    """A real face video's grey frames, read without making RGB, are OpenCV's grey of the RGB
    frames within one level, except at a few pixels whose strong colours clip in RGB."""
    for frame in list(iter_frames(asset(name)))[:40:7]:
        grey = frame.grey
        assert frame._image is None  # grey alone converted nothing to RGB
        expected = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        assert grey.shape == expected.shape and grey.dtype == np.uint8
        off = np.abs(grey.astype(int) - expected)
        assert np.mean(off <= 1) > 0.995 and off.max() <= 12


def test_rotated_video_grey_is_turned_like_its_rgb(tmp_path: Path) -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:8] = 255
    rotated = write_video(tmp_path / "phone.mp4", frames=3, images=[image] * 3, rotation=90)
    frame = next(iter_frames(rotated))
    assert frame.grey.shape == frame.image.shape[:2] == (WIDTH, HEIGHT)
    assert frame.grey[:, :6].mean() > 200 and frame.grey[:, 10:].mean() < 40


def test_non_ascii_and_space_names_work(tmp_path: Path) -> None:
    folder = tmp_path / "Ünïcode 表情 clips"
    folder.mkdir()
    path = write_video(folder / "happy – 😀 01.mp4")
    assert probe(path).frame_count == FRAMES
    assert read_barcode(read_frames(str(path), [33]).frames[0].image) == 33


def test_fps_argument_does_not_change_a_videos_own_timing(clip: Path) -> None:
    assert probe(clip, fps=10).fps == FPS
    assert read_frames(clip, [50], fps=10).frames[0].time == pytest.approx(2.0)
    with pytest.raises(InputError, match="fps"):
        probe(clip, fps=0)


@pytest.mark.parametrize("name", ["feat-video-single-face", "feat-video-no-face"])
def test_real_clips_decode_completely_and_seek_to_the_same_pixels(
    asset: Callable[[str], Path], name: str
) -> None:
    """Real encoder output; the second clip's MP4 edit list hides 3 of its 98 samples."""
    path = asset(name)
    info = probe(path)
    wanted = uniform(info.frame_count, 8)[::-1]
    sequential: dict[int, np.ndarray] = {}
    times: list[float] = []
    for frame in iter_frames(path):
        times.append(frame.time)
        if frame.index in wanted:
            sequential[frame.index] = frame.image
    assert len(times) == info.frame_count
    assert times[0] == 0.0 and all(a < b for a, b in pairwise(times))
    assert times[-1] < info.duration
    for frame in read_frames(path, wanted).frames:
        assert np.array_equal(frame.image, sequential[frame.index])
        assert frame.time == times[frame.index]


# --- failures -----------------------------------------------------------------------------------


def assert_media_error_names(path: Path, raised: pytest.ExceptionInfo[MediaError]) -> None:
    """A MediaError message names the file and says what to do."""
    message = str(raised.value)
    assert str(path) in message
    assert any(fix in message for fix in ("Re-", "re-", "Check", "Pass", "Point", "Take"))


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError, match="empty") as raised:
        probe(empty)
    assert_media_error_names(empty, raised)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 20)
    for call in (probe, lambda p: read_frames(p, [0]), lambda p: list(iter_frames(p))):
        with pytest.raises(MediaError, match="not a readable video") as raised:
            call(text)
        assert_media_error_names(text, raised)


def test_mp4_cut_before_its_index_is_unreadable(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mp4")  # the moov index is written at the end
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as raised:
        probe(path)
    assert_media_error_names(path, raised)


@pytest.mark.parametrize(
    ("name", "codec", "options"),
    [("fast.mp4", "libx264", {"movflags": "faststart"}), ("half.avi", "mjpeg", {})],
)
def test_truncated_file_never_gives_a_silently_short_clip(
    tmp_path: Path, name: str, codec: str, options: dict[str, str]
) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) for _ in range(FRAMES)]
    path = write_video(tmp_path / name, codec, images=images, container_options=options)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    count = probe(path).frame_count
    assert 0 < count < FRAMES  # counted from the packets that are there, not the header
    with pytest.raises(MediaError, match="74") as raised:
        read_frames(path, [0, 74])
    assert_media_error_names(path, raised)
    yielded: list[int] = []
    try:
        yielded.extend(frame.index for frame in iter_frames(path))
    except MediaError as error:
        assert str(path) in str(error) and "truncated or corrupt" in str(error)
    else:
        assert yielded == list(range(count))
    try:
        whole = read_frames(path, range(count))
    except MediaError as error:
        assert str(path) in str(error) and "did not decode" in str(error)
    else:
        assert [frame.index for frame in whole.frames] == list(range(count))


def test_video_with_a_stream_but_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "nothing.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        container.start_encoding()
    with pytest.raises(MediaError, match="no frames") as raised:
        probe(path)
    assert_media_error_names(path, raised)


def test_container_without_a_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(MediaError, match="no video stream") as raised:
        read_frames(path, [0])
    assert_media_error_names(path, raised)


def test_index_past_the_end_names_the_index_and_the_count(clip: Path) -> None:
    with pytest.raises(MediaError, match=r"75.*75 frames") as raised:
        read_frames(clip, [3, FRAMES])
    assert_media_error_names(clip, raised)


def test_negative_index_and_bad_step_are_input_errors(clip: Path) -> None:
    with pytest.raises(InputError, match="negative"):
        read_frames(clip, [2, -1])
    with pytest.raises(InputError, match="step"):
        iter_frames(clip, step=0)


def test_missing_file_and_dangling_symlink(tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    with pytest.raises(MediaError, match="no such file") as raised:
        probe(missing)
    assert_media_error_names(missing, raised)
    with pytest.raises(MediaError, match="no such file"):
        iter_frames(missing)  # raised at the call, before any iteration
    link = tmp_path / "link.mp4"
    link.symlink_to(missing)
    with pytest.raises(MediaError, match="symbolic link") as raised:
        read_frames(link, [0])
    assert_media_error_names(link, raised)


def test_a_folder_given_as_a_video_is_read_as_a_frame_folder(tmp_path: Path) -> None:
    """As root, chmod cannot make a file unreadable; a folder named like a video stands in."""
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    with pytest.raises(MediaError, match="no frame images") as raised:
        probe(folder)
    assert_media_error_names(folder, raised)


def test_a_named_pipe_is_refused_without_hanging(tmp_path: Path) -> None:
    pipe = tmp_path / "stream.mp4"
    os.mkfifo(pipe)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            probe(pipe)
        except MediaError as error:
            outcome.append(error)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert outcome and "not a regular file" in str(outcome[0]) and str(pipe) in str(outcome[0])


def test_read_ahead_gives_the_frames_of_the_stream_in_order(clip: Path) -> None:
    wanted = list(range(0, FRAMES, 2))
    ahead = list(video.read_ahead(video.stream_frames(clip, wanted), 4))
    assert [frame.index for frame in ahead] == wanted
    assert [read_barcode(frame.image) for frame in ahead] == wanted
    direct = video.stream_frames(clip, wanted)
    assert all(np.array_equal(a.image, d.image) for a, d in zip(ahead, direct, strict=True))


def test_read_ahead_raises_the_streams_error_after_the_same_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) for _ in range(FRAMES)]
    path = write_video(tmp_path / "cut.avi", "mjpeg", images=images)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])  # ends mid-frame

    def outcome(frames: Iterator[Frame]) -> tuple[list[int], str]:
        seen: list[int] = []
        try:
            seen.extend(frame.index for frame in frames)
        except MediaError as error:
            return seen, str(error)
        return seen, ""

    indices = range(probe(path).frame_count)
    direct = outcome(video.stream_frames(path, indices))
    assert direct[0] and direct[1]  # some frames decode, then the cut is reported
    assert outcome(video.read_ahead(video.stream_frames(path, indices), 3)) == direct


def test_closing_read_ahead_early_stops_its_thread_and_the_decoder(clip: Path) -> None:
    inner = video.stream_frames(clip, range(FRAMES))
    ahead = video.read_ahead(inner, 2)
    assert [next(ahead).index, next(ahead).index] == [0, 1]
    ahead.close()
    assert inner.gi_frame is None  # the decoder's generator ran its cleanup: file closed
    assert not [t for t in threading.enumerate() if t.name == "emovlm-read-ahead"]


def test_read_ahead_count_must_be_positive(clip: Path) -> None:
    with pytest.raises(InputError, match="read_ahead count"):
        video.read_ahead(video.stream_frames(clip, [0]), 0)

"""Decode video files, frame folders and single images into RGB frames, only those asked for."""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import math
import operator
import os
import queue
import re
import stat
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Literal, NamedTuple

import av
import cv2
import numpy as np
from PIL import Image, ImageOps

from emovlm.errors import InputError, MediaError
from emovlm.types import Clip, Frame, Pixels

DEFAULT_FPS = 25.0
"""Frame rate given to frame folders and images, which carry no timing of their own."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File name endings read as still images; every other file is opened as a video."""

SEEK_MIN_SKIP = 8
"""Seek to a keyframe only when that skips at least this many frames; else decode on."""

MediaKind = Literal["video", "frames", "image"]

_BT601_COLORSPACES = frozenset({2, 5, 6})  # FFmpeg AVCOL_SPC_ UNSPECIFIED, BT470BG, SMPTE170M
_FULL_RANGE = 2  # FFmpeg AVCOL_RANGE_JPEG
_INDEX_DISCARD_FRAME = 4  # FFmpeg AVINDEX_DISCARD_FRAME: a sample an edit list cuts away


@dataclass(frozen=True)
class MediaInfo:
    """What a media path holds: kind, frame count, frame rate, duration (s) and displayed size."""

    path: Path
    kind: MediaKind
    frame_count: int
    fps: float
    duration: float
    width: int
    height: int


def probe(path: Path | str, *, fps: float | None = None) -> MediaInfo:
    """Describe a video file, frame folder or image; of a video, only the first frame is decoded.

    `fps` is the frame rate of frame folders and images (default 25); video files use their own.
    """
    path = Path(path)
    rate = _still_fps(fps)
    kind = _media_kind(path)
    if kind == "video":
        return _probe_video(path)
    files = _still_files(path, kind)
    width, height = _image_size(files[0])
    return MediaInfo(path, kind, len(files), rate, len(files) / rate, width, height)


def read_frames(path: Path | str, indices: Sequence[int], *, fps: float | None = None) -> Clip:
    """Decode the frames at `indices` (any order, repeats allowed), returned in that order.

    Raises MediaError when a requested frame does not exist or does not decode.
    """
    path = Path(path)
    rate = _still_fps(fps)
    kind = _media_kind(path)
    indices = [operator.index(index) for index in indices]
    wanted = sorted(set(indices))
    if wanted and wanted[0] < 0:
        raise InputError(f"{path}: frame index {wanted[0]} is negative; indices start at 0.")
    if kind == "video":
        return _read_video(path, indices, wanted)
    files = _still_files(path, kind)
    _check_indices_exist(path, wanted, len(files))
    images = {index: load_image(files[index]) for index in wanted}
    frames = tuple(Frame(image, index / rate, index) for index, image in _in_order(indices, images))
    return Clip(frames, rate, len(files), len(files) / rate)


def iter_frames(path: Path | str, step: int = 1, *, fps: float | None = None) -> Iterator[Frame]:
    """Stream every `step`-th frame (0, step, 2*step, ...) in time order, holding one at a time.

    Bad arguments and paths raise at the call; a video's decoding errors raise while iterating,
    and a stream that ends early raises MediaError after the frames that did decode.
    """
    if step < 1:
        raise InputError(f"iter_frames step must be 1 or more, got {step}.")
    path = Path(path)
    rate = _still_fps(fps)
    kind = _media_kind(path)
    if kind == "video":
        return _iter_video(path, step)
    files = _still_files(path, kind)
    return (
        Frame(load_image(files[index]), index / rate, index) for index in range(0, len(files), step)
    )


TRIM_EVERY_FRAMES = 128
"""A streamed video hands the heap's free memory back to the system every this many frames."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None without glibc (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _trimmed(frames: Iterator[Frame]) -> Generator[Frame]:
    """The frames, giving freed heap memory back every TRIM_EVERY_FRAMES frames.

    Decoded frames are freed in another order than they were made, so glibc's heap fragments
    and grows with a long video's length; trimming keeps it flat. (Mapping every frame on its
    own instead halves the pipeline's speed: every large tensor then faults its pages in anew.)
    """
    trim = _malloc_trim()
    for count, frame in enumerate(frames, 1):
        yield frame
        if trim is not None and count % TRIM_EVERY_FRAMES == 0:
            trim(0)


def stream_frames(
    path: Path | str, indices: Sequence[int], *, fps: float | None = None, threads: int = 0
) -> Generator[Frame]:
    """Decode the frames at `indices` in time order (each once), holding one at a time.

    The streaming form of `read_frames` for long videos: bad arguments and paths raise at the
    call; a frame that does not decode (a truncated file) raises MediaError while iterating,
    after every frame before it that did. `threads` caps a video's decoding threads (0: as
    many as FFmpeg picks).
    """
    path = Path(path)
    rate = _still_fps(fps)
    kind = _media_kind(path)
    wanted = sorted({operator.index(index) for index in indices})
    if wanted and wanted[0] < 0:
        raise InputError(f"{path}: frame index {wanted[0]} is negative; indices start at 0.")
    if kind == "video":
        return _trimmed(_stream_video(path, wanted, threads))
    files = _still_files(path, kind)
    _check_indices_exist(path, wanted, len(files))
    return _trimmed(Frame(load_image(files[index]), index / rate, index) for index in wanted)


class _End(NamedTuple):
    """What a read-ahead thread puts after the last frame: the error that ended it, if any."""

    error: BaseException | None


def read_ahead(frames: Iterator[Frame], count: int) -> Generator[Frame]:
    """The same frames, decoded up to `count` ahead in a background thread.

    Decoding (FFmpeg, OpenCV) releases the GIL, so the next frames decode on another core
    while the caller works on these; at most `count` + 1 decoded frames wait. An error of
    `frames` is raised here after the frames before it. Closing this iterator stops the
    thread and closes `frames`.
    """
    if count < 1:
        raise InputError(f"read_ahead count must be 1 or more, got {count}.")
    return _read_ahead(frames, count)


def _read_ahead(frames: Iterator[Frame], count: int) -> Generator[Frame]:
    """`read_ahead` once its arguments are checked."""
    waiting: queue.Queue[Frame | _End] = queue.Queue(maxsize=count)
    stop = threading.Event()

    def produce() -> None:
        end = _End(None)
        try:
            for frame in frames:
                waiting.put(frame)
                if stop.is_set():
                    return
        except Exception as error:  # handed to the consumer, raised there
            end = _End(error)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        if not stop.is_set():
            waiting.put(end)

    thread = threading.Thread(target=produce, name="emovlm-read-ahead", daemon=True)
    thread.start()
    try:
        while not isinstance(item := waiting.get(), _End):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        stop.set()
        while thread.is_alive():  # free the producer's one blocked put, then wait for it
            try:
                waiting.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)


def load_image(path: Path | str) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3): EXIF orientation applied, alpha dropped, grey to 3."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return _rgb_array(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise MediaError(
            f"{path}: cannot read this image ({error}). Check that it opens in an image viewer; "
            "re-download or re-extract it if not."
        ) from error


# --- paths -------------------------------------------------------------------------------------


def _media_kind(path: Path) -> MediaKind:
    """Tell a frame folder, an image and a video apart, rejecting what cannot be read."""
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        dangling = " (a symbolic link whose target is missing)" if path.is_symlink() else ""
        raise MediaError(
            f"{path}: no such file or folder{dangling}. Check the dataset root and media path."
        ) from error
    except OSError as error:
        raise MediaError(
            f"{path}: cannot be read ({error.strerror}). Check the path and its permissions."
        ) from error
    if stat.S_ISDIR(status.st_mode):
        return "frames"
    if not stat.S_ISREG(status.st_mode):
        raise MediaError(
            f"{path}: not a regular file (a pipe, socket or device). "
            "Pass a video file, an image, or a folder of frame images."
        )
    if status.st_size == 0:
        raise MediaError(f"{path}: the file is empty (0 bytes). Re-download or re-extract it.")
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


def _still_files(path: Path, kind: MediaKind) -> list[Path]:
    """The image files of a frame folder in natural order, or the image itself."""
    if kind == "image":
        return [path]
    try:
        names = [
            entry.name
            for entry in os.scandir(path)
            if entry.is_file()
            and not entry.name.startswith(".")
            and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
        ]
    except OSError as error:
        raise MediaError(f"{path}: cannot list this folder ({error.strerror}).") from error
    if not names:
        raise MediaError(
            f"{path}: folder holds no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}). "
            "Point the sample at a video file or at a folder of extracted frames."
        )
    return [path / name for name in sorted(names, key=_natural_key)]


def _natural_key(name: str) -> tuple[list[int | str], str]:
    """Sort key that orders numbers in names by value: img_2.png before img_10.png."""
    parts = re.split(r"(\d+)", name.lower())
    return [int(part) if part.isdigit() else part for part in parts], name


def _still_fps(fps: float | None) -> float:
    """The frame rate for frame folders and images: `fps` if given, else DEFAULT_FPS.

    Checked for videos too, which ignore it: a bad value is a caller bug whatever the media.
    """
    if fps is None:
        return DEFAULT_FPS
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}.")
    return float(fps)


def _check_indices_exist(path: Path, wanted: list[int], frame_count: int) -> None:
    """Raise MediaError naming the requested indices past the last frame of the source."""
    missing = [index for index in wanted if index >= frame_count]
    if missing:
        raise MediaError(
            f"{path}: asked for frame(s) {_listed(missing)} but it has {frame_count} frames "
            f"(0-{frame_count - 1}). Take indices from probe(path).frame_count."
        )


def _in_order(
    indices: Sequence[int], images: dict[int, np.ndarray]
) -> Iterator[tuple[int, np.ndarray]]:
    """Pair each requested index with its image in request order; repeats get their own copy."""
    handed_out: set[int] = set()
    for index in indices:
        image = images[index]
        yield index, image.copy() if index in handed_out else image
        handed_out.add(index)


def _listed(indices: Sequence[int]) -> str:
    """A short listing of frame indices for error messages."""
    shown = ", ".join(str(index) for index in indices[:5])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > 5 else "")


# --- images ------------------------------------------------------------------------------------


def _image_size(path: Path) -> tuple[int, int]:
    """Displayed (width, height) of an image, reading only its header (EXIF rotation counted)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # orientations that turn by 90 degrees
                width, height = height, width
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"{path}: cannot read this image ({error}). Re-download it.") from error
    return width, height


def _rgb_array(image: Image.Image) -> np.ndarray:
    """A writable RGB uint8 array of any Pillow image; 16-bit grey is scaled, not clipped."""
    if image.mode.startswith("I"):
        grey = (np.clip(np.asarray(image), 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.array(image.convert("RGB"))


# --- videos ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameTable:
    """Every frame of a video stream, found by demuxing packets without decoding them.

    `pts` holds presentation timestamps in time order (position = frame index), or None when
    the stream carries no usable timestamps (e.g. a raw .h264 file); then frames are indexed in
    decode-output order and cannot be sought.
    """

    count: int
    pts: tuple[int, ...] | None
    keyframes: tuple[_Keyframe, ...]
    duration_ts: int

    def index_of(self, pts: int | None, previous: int) -> int:
        """Frame index of a decoded frame from its timestamp; the next index if it has none."""
        if self.pts is not None and pts is not None:
            position = bisect.bisect_left(self.pts, pts)
            if position < self.count and self.pts[position] == pts:
                return position
        return previous + 1

    def keyframe_before(self, index: int) -> _Keyframe | None:
        """The last keyframe at or before frame `index`, if any."""
        position = bisect.bisect_right(self.keyframes, index, key=lambda key: key.index) - 1
        return self.keyframes[position] if position >= 0 else None


class _Keyframe(NamedTuple):
    """A keyframe's frame index and its packet's presentation and decoding timestamps."""

    index: int
    pts: int
    dts: int


def _frame_table(container: av.container.InputContainer, stream: av.VideoStream) -> _FrameTable:
    """Demux every packet of `stream` (no decoding) into its frame table."""
    stamps: list[int] = []
    keyframe_stamps: list[tuple[int, int]] = []  # (pts, dts)
    count = 0
    end: int | None = None
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # flush packet, empty AVI chunk, or cut by an
            continue  # edit list (decoded for reference, never shown)
        count += 1
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            continue
        stamps.append(pts)
        packet_end = pts + (packet.duration or 0)
        end = packet_end if end is None else max(end, packet_end)
        if packet.is_keyframe:
            keyframe_stamps.append((pts, packet.dts if packet.dts is not None else pts))
    stamps.sort()
    if end is None or len(stamps) < count or len(set(stamps)) < count:
        return _FrameTable(count, None, (), 0)
    position = {pts: index for index, pts in enumerate(stamps)}
    keyframes = sorted(_Keyframe(position[pts], pts, dts) for pts, dts in keyframe_stamps)
    return _FrameTable(
        count, tuple(stamps), tuple(keyframes), end - stamps[0] if end > stamps[-1] else 0
    )


class _VideoFile:
    """An open video file: its frame table, and frames decoded forward with keyframe seeks."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        self.path = path
        self.threads = threads
        self.decode_error = ""
        self._container, self._stream = self._open()
        self.can_seek = True
        self._seek_by: tuple[str, ...] = ("pts", "dts")

    def __enter__(self) -> _VideoFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._container.close()

    def error(self, reason: str) -> MediaError:
        """A MediaError naming this file, the reason and the fix."""
        return MediaError(
            f"{self.path}: cannot decode this video: {reason}. Check it with `ffprobe`; "
            "re-encode it (e.g. `ffmpeg -i in -c:v libx264 out.mp4`) or re-download it."
        )

    def _open(self) -> tuple[av.container.InputContainer, av.VideoStream]:
        """Open the file and its first video stream with threaded decoding (`threads`; 0: as
        many as FFmpeg picks)."""
        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise self.error(f"it is not a readable video ({error})") from error
        if not container.streams.video:
            container.close()
            raise self.error("it has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = self.threads
        return container, stream

    def restart(self) -> None:
        """Reopen the file so the next frames come from its start."""
        self._container.close()
        self._container, self._stream = self._open()

    @functools.cached_property
    def fps(self) -> float:
        """The stream's average frame rate (its guessed rate when the average is missing)."""
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            raise self.error("it states no frame rate")
        return float(rate)

    @functools.cached_property
    def table(self) -> _FrameTable:
        """The frame table, built on first use by demuxing the whole file (then reopened)."""
        try:
            table = _frame_table(self._container, self._stream)
        except av.FFmpegError as error:
            raise self.error(f"its packets cannot be read ({error})") from error
        if table.count == 0:
            raise self.error("it has a video stream but no frames")
        self.can_seek = table.pts is not None
        self.restart()
        return table

    def indexed_frame_count(self) -> int | None:
        """Frames the container's index lists, if it lists every packet inside the file; else None.

        MP4/MOV sample tables and AVI indexes qualify; Matroska/WebM and MPEG-TS do not (they
        index only some keyframes), nor does a truncated file whose index points past its end.
        Samples an MP4 edit list cuts away are not counted: they never decode to a frame.
        """
        entries = self._stream.index_entries
        if self._stream.frames <= 0 or len(entries) != self._stream.frames:
            return None
        if max(entry.pos + entry.size for entry in entries) > self.path.stat().st_size:
            return None
        return sum(1 for entry in entries if not entry.flags & _INDEX_DISCARD_FRAME)

    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end (count/fps if unknown)."""
        if self.table.duration_ts:
            return float(self.table.duration_ts * self._stream.time_base)
        return self.table.count / self.fps

    def indexed_duration(self, count: int) -> float:
        """The stream's stated duration in seconds, or count/fps when it states none."""
        if self._stream.duration:
            return float(self._stream.duration * self._stream.time_base)
        return count / self.fps

    def displayed_size(self) -> tuple[int, int]:
        """(width, height) of the first frame as displayed, decoding just that frame."""
        try:
            for frame in self._container.decode(self._stream):
                turned = round((frame.rotation or 0) / 90) % 2
                return (frame.height, frame.width) if turned else (frame.width, frame.height)
        except av.FFmpegError as error:
            raise self.error(f"its first frame does not decode ({error})") from error
        raise self.error("no frame decodes")

    def time_of(self, index: int) -> float:
        """Seconds from the first frame to frame `index` (from PTS when the stream has them)."""
        pts = self.table.pts
        if pts is None or index >= len(pts):
            return index / self.fps
        base = self._stream.time_base  # ints: Python's int / int rounds as float(Fraction) does
        return (pts[index] - pts[0]) * base.numerator / base.denominator

    def frames(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode onward from the current position, yielding (index, frame); errors are kept."""
        table = self.table
        packets = self._container.demux(self._stream)
        index = -1
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as error:
                self.decode_error = self.decode_error or str(error)
                return
            try:
                decoded = packet.decode()
            except av.FFmpegError as error:
                self.decode_error = self.decode_error or str(error)
                continue
            for frame in decoded:
                index = table.index_of(frame.pts, index)
                yield index, frame

    def frames_from_keyframe(
        self, target: int, position: int
    ) -> Iterator[tuple[int, av.VideoFrame]] | None:
        """Seek to the keyframe before `target` if that skips enough frames, else None.

        Demuxers seek by presentation (MP4, Matroska) or decoding (AVI, MPEG-TS) timestamps:
        seeking tries the keyframe's pts, then its dts, keeping the first that does not land
        past the target. If neither works, decoding restarts from the start without seeking.
        """
        keyframe = self.table.keyframe_before(target) if self.can_seek else None
        if keyframe is None or keyframe.index - position < SEEK_MIN_SKIP:
            return None
        while self._seek_by:
            try:
                self._container.seek(getattr(keyframe, self._seek_by[0]), stream=self._stream)
            except av.FFmpegError:
                first = None
            else:
                frames = self.frames()
                first = next(frames, None)
            if first is not None and first[0] <= target:
                return chain([first], frames)
            self._seek_by = self._seek_by[1:]
        self.can_seek = False
        self.restart()
        return self.frames()

    def shortfall(self, what: str, decoded: int) -> MediaError:
        """The MediaError for frames the file lists but the decoder did not produce."""
        said = f"; the decoder said: {self.decode_error}" if self.decode_error else ""
        return self.error(
            f"{what} ({decoded} of its {self.table.count} frames decoded{said}); "
            "the file is probably truncated or corrupt"
        )


def _pixels(frame: av.VideoFrame) -> np.ndarray | Pixels:
    """The frame as displayed (turned by its display-matrix rotation), converted when needed.

    BT.601 limited-range yuv420p, most video, stays the decoder's frame until RGB or grey is
    asked for (`_Yuv420`); other pixel formats are converted to RGB by swscale here.
    """
    turns = round((frame.rotation or 0) / 90) % 4
    if (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and frame.colorspace in _BT601_COLORSPACES
        and frame.color_range != _FULL_RANGE
        and frame.planes[0].line_size > 0
    ):
        return _Yuv420(frame, turns)
    return _turned(frame.to_ndarray(format="rgb24"), turns)


def _turned(image: np.ndarray, turns: int) -> np.ndarray:
    """`image` turned `turns` quarter turns anticlockwise (a contiguous copy), or as it is."""
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


# BT.601 limited range: grey = 0.299 R + 0.587 G + 0.114 B = 255/219 (Y - 16), since the chroma
# terms cancel; the same as OpenCV's RGB-to-grey of the converted frame except where R, G or B
# clip (strongly saturated colours).
_LUMA_GAIN = 255 / 219


@dataclass(frozen=True)
class _Yuv420:
    """A decoded yuv420p frame, converted on demand (it holds the decoder's planes, no copy)."""

    frame: av.VideoFrame
    turns: int

    def rgb(self) -> np.ndarray:
        """RGB by OpenCV (about 3x faster than swscale, same result within 4 levels of 255)."""
        planes = self.frame.to_ndarray()  # the I420 layout: Y rows, then U and V
        return _turned(cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420), self.turns)

    def grey(self) -> np.ndarray:
        """Grey from the luma plane alone, read in place, with no RGB made."""
        plane = self.frame.planes[0]
        luma = np.ndarray(
            (plane.height, plane.width), np.uint8, buffer=plane, strides=(plane.line_size, 1)
        )  # rounded and clipped to 0..255 by OpenCV:
        return _turned(cv2.addWeighted(luma, _LUMA_GAIN, luma, 0, -16 * _LUMA_GAIN), self.turns)


def _probe_video(path: Path) -> MediaInfo:
    """MediaInfo of a video; counts frames by demuxing when the container's index falls short."""
    with _VideoFile(path) as video:
        count = video.indexed_frame_count()
        if count:
            duration = video.indexed_duration(count)
        else:
            count, duration = video.table.count, video.duration()
        width, height = video.displayed_size()
        return MediaInfo(path, "video", count, video.fps, duration, width, height)


def _read_video(path: Path, indices: Sequence[int], wanted: list[int]) -> Clip:
    """Decode the wanted frames of a video, seeking over stretches that hold no wanted frame."""
    with _VideoFile(path) as video:
        images = {frame.index: frame for frame in _wanted_frames(video, wanted)}
        frames_out = tuple(
            Frame(image, images[index].time, index)
            for index, image in _in_order(indices, {i: f.image for i, f in images.items()})
        )
        return Clip(frames_out, video.fps, video.table.count, video.duration())


def _wanted_frames(video: _VideoFile, wanted: list[int]) -> Iterator[Frame]:
    """The frames at sorted, distinct `wanted` indices in time order, seeking over long stretches.

    Raises MediaError after the frames that decoded when any wanted frame did not.
    """
    _check_indices_exist(video.path, wanted, video.table.count)
    wanted_set = set(wanted)
    frames = video.frames()
    position = 0  # index just after the furthest frame decoded so far
    last = -1  # index of the last frame handed out: frames go out in time order, once
    handed: set[int] = set()
    for target in wanted:
        if target < position:
            continue  # decoding passed it without producing it: reported below
        frames = video.frames_from_keyframe(target, position) or frames
        for index, frame in frames:
            position = max(position, index + 1)
            if index in wanted_set and index > last:
                last = index
                handed.add(index)
                yield Frame(_pixels(frame), video.time_of(index), index)
            if index >= target:
                break
    if len(handed) < len(wanted):
        missing = [index for index in wanted if index not in handed]
        raise video.shortfall(f"frame(s) {_listed(missing)} did not decode", len(handed))


def _stream_video(path: Path, wanted: list[int], threads: int) -> Iterator[Frame]:
    """`_wanted_frames` of a video file that is opened on the first frame asked for."""
    with _VideoFile(path, threads) as video:
        yield from _wanted_frames(video, wanted)


def _iter_video(path: Path, step: int) -> Iterator[Frame]:
    """Decode a video front to back, yielding every `step`-th frame."""
    with _VideoFile(path) as video:
        decoded = 0
        for index, frame in video.frames():
            decoded += 1
            if index % step == 0:
                yield Frame(_pixels(frame), video.time_of(index), index)
        if decoded < video.table.count:
            raise video.shortfall("the stream ended early", decoded)

"""Sampled frames as one short MP4 at their sampling rate, for servers that take video parts.

H.264 (libx264, yuv420p) when this PyAV build has the encoder, else MPEG-4 part 2; frames are
padded to even sides (edge pixels repeated), as 4:2:0 chroma needs. The frame rate is the exact
sampling rate as a fraction, so the server's decoder sees the clip's real timing.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from fractions import Fraction
from functools import cache

import av
import numpy as np

MAX_DENOMINATOR = 1001
"""Frame rates are sent as fractions with at most this denominator (29.97 = 30000/1001)."""


@cache
def encoder() -> str:
    """The video encoder used: libx264 where this PyAV build has it, else mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return "mpeg4"
    return "libx264"


def frame_rate(fps: float) -> Fraction:
    """The sampling rate as the fraction written into the MP4."""
    if fps <= 0:
        raise ValueError(f"a video needs a positive frame rate, got {fps}")
    return Fraction(fps).limit_denominator(MAX_DENOMINATOR)


def encode_mp4(frames: Sequence[np.ndarray], fps: float, quality: int = 18) -> bytes:
    """RGB uint8 frames (same size, in time order) as MP4 bytes at `fps` frames per second.

    `quality` is the H.264 constant rate factor (lower is better; 18 is visually lossless).
    """
    if not frames:
        raise ValueError("a video needs at least one frame")
    height, width = frames[0].shape[:2]
    padded_h, padded_w = height + height % 2, width + width % 2
    rate = frame_rate(fps)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        name = encoder()
        options = {"crf": str(quality), "preset": "veryfast"} if name == "libx264" else {}
        stream = container.add_stream(name, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = padded_w, padded_h, "yuv420p"
        if name == "mpeg4":
            stream.codec_context.qscale = 2
        for index, image in enumerate(frames):
            if image.shape[:2] != (height, width):
                raise ValueError("all frames of a video must have the same size")
            if (padded_h, padded_w) != (height, width):
                image = np.pad(
                    image, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="edge"
                )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def mp4_data_url(frames: Sequence[np.ndarray], fps: float) -> str:
    """The frames as a base64 `data:video/mp4` URL, the form servers take in `video_url` parts."""
    return "data:video/mp4;base64," + base64.b64encode(encode_mp4(frames, fps)).decode("ascii")

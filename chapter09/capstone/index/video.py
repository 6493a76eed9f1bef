"""Videos in the library: the frame rows' keys, the sampling rule, and reading frames with PyAV.

A video is indexed as one row per sampled frame, keyed ``"<video path>#t=<seconds, 2 decimals>"`` (the W3C
media-fragment form a browser's ``<video src>`` understands); ``frame_key`` and ``split_key`` are the only code
that writes or reads that form. The rows carry the video file's size, mtime and sha1, so the index plans a video
as one unit (unchanged: skipped; moved: re-keyed; changed: re-sampled; gone: every frame removed).

The sampling rule (``VideoSampling``): a frame at 0 s and then every ``every_s`` seconds, plus a frame wherever the
picture differs from the last frame taken by more than ``scene_threshold`` (the mean absolute difference of 32x32
grey thumbnails, 0-255) and at least ``SCENE_MIN_GAP_S`` after it; at most ``max_frames`` per video. A video longer
than ``every_s * max_frames`` has its interval stretched to ``duration / max_frames`` so the frames cover it all;
past the cap nothing more is taken. Frames are downscaled as they are converted (swscale), and only the frames
taken are ever converted to RGB, so a long or huge video costs one decode pass and a few small images.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UsageError
from ...images import MAX_PIXELS, VIDEO_SUFFIXES, BadImageError, load_image
from .metadata import NO_METADATA

SCENE_SIDE = 32  # the grey thumbnail two frames are compared at
SCENE_MIN_GAP_S = 0.5  # a scene change closer than this to the last frame taken is not taken
ANALYSE_FPS = 8.0  # frames compared per second of video at most (the rest are decoded, never converted)
_KEY = re.compile(r"^(?P<video>.+)#t=(?P<time>\d+\.\d{2})$")


def is_video(path) -> bool:
    """Whether ``path`` names a video file (by its suffix: ``images.VIDEO_SUFFIXES``)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def frame_key(video: str, time_s: float) -> str:
    """The row key of the frame of ``video`` (a path relative to the library) at ``time_s`` seconds."""
    return f"{video}#t={time_s:.2f}"


def split_key(key: str) -> tuple[str, float | None]:
    """(file path, time in seconds) of a row key; a photo's key is its path, with None for the time."""
    match = _KEY.match(key)
    if match is None or not is_video(match["video"]):
        return key, None
    return match["video"], float(match["time"])


def unit_of(key: str) -> str:
    """The file a row belongs to: a frame's video, a photo itself."""
    return split_key(key)[0]


def clock(time_s: float) -> str:
    """Seconds as a video player shows them: 0:07, 1:02:03."""
    whole = int(time_s)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a video are indexed (the rule in this module's docstring); checked where made."""

    every_s: float = 2.0
    scene_threshold: float = 20.0
    max_frames: int = 100

    def __post_init__(self):
        for value, flag, least in ((self.every_s, "--video-every", 0.1), (self.scene_threshold, "--video-scene", 0),
                                   (self.max_frames, "--video-max-frames", 1)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or value < least:
                raise UsageError(f"{flag} must be a number of at least {least:g} (got {value!r})")
        if int(self.max_frames) != self.max_frames:
            raise UsageError(f"--video-max-frames must be a whole number (got {self.max_frames!r})")


def _open(path: Path):
    """(container, its first video stream), or BadImageError saying why the file is no usable video."""
    import av  # heavy: av

    if path.stat().st_size == 0:
        raise BadImageError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise BadImageError(f"{path}: not a video PyAV can read: corrupt, truncated or another format "
                            f"({_why(error)})") from None
    if not container.streams.video:
        container.close()
        raise BadImageError(f"{path}: no video stream in the file (audio only?)")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_PIXELS:
        container.close()
        raise BadImageError(f"{path}: {width}x{height} pixels per frame is over the limit of {MAX_PIXELS:,}; "
                            "downscale the video first")
    stream.thread_type = "AUTO"
    return container, stream


def _why(error: Exception) -> str:
    """FFmpeg's reason without the file name it repeats."""
    return getattr(error, "strerror", None) or str(error)


def _scaled(frame, short_side: int) -> tuple[int, int]:
    """(width, height) of ``frame`` with its short side brought down to ``short_side`` (0: as it is)."""
    width, height = frame.width, frame.height
    if not short_side or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rgb(frame, short_side: int):
    width, height = _scaled(frame, short_side)
    return frame.reformat(width=width, height=height, format="rgb24").to_image()


def _grey(frame) -> np.ndarray:
    return frame.reformat(width=SCENE_SIDE, height=SCENE_SIDE, format="gray").to_ndarray().astype(np.int16)


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None


def sample_frames(path: str | Path, sampling: VideoSampling, short_side: int = 0):
    """The sampled frames of the video at ``path`` as (time in seconds, RGB PIL image with its short side at most
    ``short_side``), in time order; BadImageError (with the reason) for a file that is no usable video."""
    import av  # heavy: av

    path = Path(path)
    container, stream = _open(path)
    try:
        duration = _duration(container, stream)
        step = max(sampling.every_s, duration / sampling.max_frames if duration else 0.0)
        due, taken, analysed, last_grey, last_time = 0.0, 0, -math.inf, None, -math.inf
        fallback = 0.0
        try:
            for frame in container.decode(stream):
                time_s = frame.time if frame.time is not None else fallback
                fallback = time_s + 1 / float(stream.average_rate or 25)
                regular = time_s + 1e-6 >= due
                if not regular and time_s - analysed < 1 / ANALYSE_FPS:
                    continue  # decoded (the codec needs it), never converted
                analysed = time_s
                grey = _grey(frame)
                changed = last_grey is not None and float(np.abs(grey - last_grey).mean()) > sampling.scene_threshold \
                    and time_s - last_time >= SCENE_MIN_GAP_S
                if not (regular or changed) or round(time_s, 2) == round(last_time, 2):
                    continue
                while due <= time_s + 1e-6:
                    due += step
                last_grey, last_time = grey, time_s
                taken += 1
                yield time_s, _rgb(frame, short_side)
                if taken >= sampling.max_frames:
                    break
        except av.FFmpegError as error:
            raise BadImageError(f"{path}: corrupt or truncated video after {taken} frames ({_why(error)})") from None
        if not taken:
            raise BadImageError(f"{path}: no frame could be decoded (an empty or broken video stream)")
    finally:
        container.close()


def read_frame(path: str | Path, time_s: float, short_side: int = 0):
    """The frame of the video at ``path`` shown at ``time_s`` (the first frame at or after it, else the last one
    before), as an RGB PIL image with its short side at most ``short_side``: a hit's thumbnail, caption, text."""
    import av  # heavy: av

    path = Path(path)
    container, stream = _open(path)
    try:
        if time_s > 0 and stream.time_base:
            container.seek(int(time_s / stream.time_base), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is None or frame.time + 0.005 >= time_s:
                break
        if last is None:
            raise BadImageError(f"{path}: no frame at {time_s:.2f} s")
        return _rgb(last, short_side)
    except av.FFmpegError as error:
        raise BadImageError(f"{path}: corrupt or truncated video ({_why(error)})") from None
    finally:
        container.close()


def row_image(root: Path, key: str):
    """The image an index row was encoded from: a photo's file, or a video frame's frame (``read_frame``)."""
    file, time_s = split_key(key)
    return load_image(Path(root) / key) if time_s is None else read_frame(Path(root) / file, time_s)


def video_metadata(path: str | Path, mtime_ns: int) -> dict:
    """What the index stores about a video beside each frame's vector (the keys ``index.metadata.photo_metadata``
    gives a photo): its frame size, format ``video``, and the time it was recorded (the container's
    ``creation_time``, else the file's mtime; ``taken_from`` says which). No position, no camera (rarely tagged)."""
    container, stream = _open(Path(path))
    try:
        created = container.metadata.get("creation_time") or stream.metadata.get("creation_time")
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    taken = None
    if created:
        try:
            moment = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            taken = int((moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp())
        except ValueError:
            taken = None
        taken = taken if taken and taken > 0 else None  # a muxer's zero date is no date
    return {**NO_METADATA, "taken_s": taken if taken is not None else int(mtime_ns // 1_000_000_000),
            "taken_from": "video" if taken is not None else "file", "format": "video",
            "width": width, "height": height}

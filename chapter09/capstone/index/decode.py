"""One library file read, hashed, decoded and preprocessed for every encoder that needs it, in a worker process
or a Ray task; a failure comes back as a reason, never an exception. A video decodes into one item per sampled
frame (``decode_file``; ``decode_one`` reads one frame of a frame key). ``DecodedFiles`` is the local engine's
dataset of them, ``decode_loader`` its batches."""
from __future__ import annotations

from pathlib import Path
from stat import S_ISREG

import numpy as np

from ...images import BadImageError, file_sha1, load_image
from ..engines.local import worker_batches
from .metadata import NO_METADATA, photo_metadata
from .video import VideoSampling, frame_key, is_video, read_frame, sample_frames, split_key, video_metadata
from .walk import file_kind


def decode_one(root: Path, relative: str, preprocessors: dict, min_side: int, uint8: bool = False) -> dict:
    """Read, hash, decode and preprocess one file; a failure comes back as a reason, never an exception.

    The metadata (``photo_metadata``) is read from the image as ``load_image`` opens it: no second read.
    ``uint8``: the pixels resized and cropped but not yet rescaled and normalised (``resized_uint8``), a quarter of
    float32's bytes for crossing Ray's object store; the encoder's side finishes them with ``normalised``."""
    file, time_s = split_key(relative)  # a video frame's key: that one frame (captions and text of frames)
    path = root / file
    out = empty_item(relative)
    try:
        stat = path.stat()
        out["size"], out["mtime_ns"] = stat.st_size, stat.st_mtime_ns
        if not S_ISREG(stat.st_mode):  # became a pipe or a device since the walk: reading it could block
            raise BadImageError(f"{path}: not a regular file ({file_kind(stat.st_mode)}): never opened")
        out["sha1"] = file_sha1(path)
        meta = {}
        if time_s is not None:
            image = read_frame(path, time_s, min_side)
            meta = video_metadata(path, stat.st_mtime_ns)
        else:
            image = load_image(path, min_side=min_side, on_open=lambda opened: meta.update(
                photo_metadata(opened, stat.st_mtime_ns)))
        out["pixels"] = preprocessed(preprocessors, image, uint8)
        out.update(meta)  # width, height: the original's (the draft decode may have scaled the pixels)
        out["ok"] = True
    except Exception as error:
        failed(out, path, error)
    return out


def empty_item(relative: str) -> dict:
    """A decoded item before anything is read: not ok, no pixels, no metadata."""
    return {"path": relative, "ok": False, "reason": "", "width": 0, "height": 0, "size": 0, "mtime_ns": 0,
            "sha1": "", "pixels": None, **NO_METADATA}


def failed(out: dict, path: Path, error: Exception) -> None:
    """``out`` marked with why reading ``path`` failed: a bad file's reason, or an unreadable file (permissions,
    an I/O error, gone: not the file's content) to try again next run, or a library bug on one file (which must
    not end the run)."""
    if isinstance(error, BadImageError):
        out["reason"] = str(error).replace(str(path) + ": ", "")
    elif isinstance(error, OSError):
        out["reason"], out["retry"] = f"cannot be read ({error.strerror or error}); tried again next run", True
    else:
        out["reason"] = f"{type(error).__name__}: {error}"


def preprocessed(preprocessors: dict, image, uint8: bool) -> dict:
    """role -> the image's pixels as that role's encoder reads them (``uint8``: resized only, ``resized_uint8``)."""
    return {role: resized_uint8(pre, image) if uint8 else
            np.asarray(pre(images=[image], return_tensors="pt")["pixel_values"][0].numpy())
            for role, pre in preprocessors.items()}


def decode_video(root: Path, relative: str, preprocessors: dict, min_side: int, uint8: bool,
                 sampling: VideoSampling) -> list[dict]:
    """One item per sampled frame of the video ``relative`` (``video.sample_frames``), each keyed by
    ``video.frame_key`` and carrying the video file's size, time and sha1; or a single failed item, keyed by the
    video's own path, saying why (a video is indexed whole or not at all)."""
    path = root / relative
    head = empty_item(relative)
    try:
        stat = path.stat()
        head["size"], head["mtime_ns"] = stat.st_size, stat.st_mtime_ns
        if not S_ISREG(stat.st_mode):
            raise BadImageError(f"{path}: not a regular file ({file_kind(stat.st_mode)}): never opened")
        head["sha1"] = file_sha1(path)
        head.update(video_metadata(path, stat.st_mtime_ns), ok=True)
        return [{**head, "path": frame_key(relative, time_s), "pixels": preprocessed(preprocessors, image, uint8)}
                for time_s, image in sample_frames(path, sampling, min_side)]
    except Exception as error:
        head["ok"] = False
        failed(head, path, error)
        return [head]


def decode_file(root: Path, relative: str, preprocessors: dict, min_side: int, uint8: bool = False,
                sampling: VideoSampling | None = None) -> list[dict]:
    """The decoded items of one library file: a photo's one, a video's one per sampled frame."""
    if is_video(relative):
        return decode_video(root, relative, preprocessors, min_side, uint8, sampling or VideoSampling())
    return [decode_one(root, relative, preprocessors, min_side, uint8)]


def resized_uint8(pre, image) -> np.ndarray:
    """The processor's resize and crop alone, as uint8 (C, H, W); a processor whose resize leaves other values
    (none of the CLIP family's) gets its full float32 output instead, which ``normalised`` passes through."""
    raw = np.asarray(pre(images=[image], return_tensors="np", do_rescale=False, do_normalize=False)["pixel_values"][0])
    if raw.dtype == np.uint8:
        return raw
    if raw.min() >= 0 and raw.max() <= 255 and np.array_equal(raw, np.round(raw)):
        return raw.astype(np.uint8)
    return np.asarray(pre(images=[image], return_tensors="np")["pixel_values"][0], np.float32)


def normalisation_of(pre) -> tuple:
    """(rescale factor, mean, std) of an image processor: what ``normalised`` applies on the encoder's side."""
    return (float(pre.rescale_factor), tuple(float(m) for m in pre.image_mean), tuple(float(s) for s in pre.image_std))


def normalised(pixels: np.ndarray, normalisation: tuple) -> np.ndarray:
    """uint8 pixels (..., C, H, W) rescaled and normalised as the processor itself does (the rescale in float64,
    then float32 arithmetic: bit-identical to its own output); float pixels pass through unchanged."""
    if pixels.dtype != np.uint8:
        return pixels
    factor, mean, std = normalisation
    shape = (len(mean), 1, 1)
    rescaled = (pixels.astype(np.float64) * factor).astype(np.float32)
    return (rescaled - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)


class DecodedFiles:
    """DataLoader dataset over the files to encode (decoded in worker processes)."""

    def __init__(self, root: Path, relative: list[str], preprocessors: dict, min_side: int,
                 sampling: VideoSampling | None = None):
        self.root, self.relative, self.preprocessors, self.min_side = root, relative, preprocessors, min_side
        self.sampling = sampling

    def __len__(self):
        return len(self.relative)

    def __getitem__(self, i):  # a list: a video is several items
        return decode_file(self.root, self.relative[i], self.preprocessors, self.min_side, sampling=self.sampling)


def preprocessors_of(encoders: dict) -> tuple[dict, int]:
    """(role -> image processor, the shortest side a decode must keep) for ``encoders``."""
    return ({role: enc.processor.image_processor for role, enc in encoders.items()},
            max(enc.image_side for enc in encoders.values()))


def decode_loader(root: Path, todo: list[str], encoders: dict, batch_size: int, workers: int | None,
                  sampling: VideoSampling | None = None):
    """The local engine's decoding: batches of decoded items from DataLoader worker processes (also timed
    alone by the bench, as the decode half of the pipeline's limit); a batch of ``batch_size`` files, a video's
    frames among them as items of their own."""
    preprocessors, min_side = preprocessors_of(encoders)
    batches = worker_batches(DecodedFiles(root, todo, preprocessors, min_side, sampling), batch_size, workers,
                             preprocessors)
    return ([item for items in batch for item in items] for batch in batches)


# A decoded item crosses Ray as columns (one numpy array per field): these, pixels apart.
ITEM_COLUMNS = ("path", "ok", "reason", "width", "height", "size", "mtime_ns", "sha1", *NO_METADATA)
TEXT_COLUMNS = ("path", "reason", "sha1", "taken_from", "camera_make", "camera_model", "format")
FLOAT_COLUMNS = ("lat", "lon")


def items_as_columns(items: list[dict]) -> dict:
    """Decoded items as Ray's numpy columns (``ITEM_COLUMNS``; text as object arrays), pixels left out."""
    return {key: np.array([item[key] for item in items], dtype=object if key in TEXT_COLUMNS else None)
            for key in ITEM_COLUMNS}


def items_from_columns(batch: dict) -> list[dict]:
    """``items_as_columns`` read back: one dict per row, as ``decode_one`` made it (pixels left out)."""
    def value(key, column):
        return str(column) if key in TEXT_COLUMNS else bool(column) if key == "ok" else \
            float(column) if key in FLOAT_COLUMNS else int(column)

    return [{key: value(key, batch[key][j]) for key in ITEM_COLUMNS} for j in range(len(batch["path"]))]

"""One library file read, hashed, decoded and preprocessed for every encoder that needs it, in a worker process
or a Ray task; a failure comes back as a reason, never an exception. ``DecodedFiles`` is the local engine's
dataset of them, ``decode_loader`` its batches."""
from __future__ import annotations

from pathlib import Path
from stat import S_ISREG

import numpy as np

from ...images import BadImageError, file_sha1, load_image
from ..engines.local import worker_batches
from .metadata import NO_METADATA, photo_metadata
from .walk import file_kind


def decode_one(root: Path, relative: str, preprocessors: dict, min_side: int, uint8: bool = False) -> dict:
    """Read, hash, decode and preprocess one file; a failure comes back as a reason, never an exception.

    The metadata (``photo_metadata``) is read from the image as ``load_image`` opens it: no second read.
    ``uint8``: the pixels resized and cropped but not yet rescaled and normalised (``resized_uint8``), a quarter of
    float32's bytes for crossing Ray's object store; the encoder's side finishes them with ``normalised``."""
    path = root / relative
    out = {"path": relative, "ok": False, "reason": "", "width": 0, "height": 0, "size": 0, "mtime_ns": 0,
           "sha1": "", "pixels": None, **NO_METADATA}
    try:
        stat = path.stat()
        out["size"], out["mtime_ns"] = stat.st_size, stat.st_mtime_ns
        if not S_ISREG(stat.st_mode):  # became a pipe or a device since the walk: reading it could block
            raise BadImageError(f"{path}: not a regular file ({file_kind(stat.st_mode)}): never opened")
        out["sha1"] = file_sha1(path)
        meta = {}
        image = load_image(path, min_side=min_side, on_open=lambda opened: meta.update(
            photo_metadata(opened, stat.st_mtime_ns)))
        out["pixels"] = {role: resized_uint8(pre, image) if uint8 else
                         np.asarray(pre(images=[image], return_tensors="pt")["pixel_values"][0].numpy())
                         for role, pre in preprocessors.items()}
        out.update(meta)  # width, height: the original's (the draft decode may have scaled the pixels)
        out["ok"] = True
    except BadImageError as error:
        out["reason"] = str(error).replace(str(path) + ": ", "")
    except OSError as error:  # unreadable (permissions, an I/O error, gone): not the file's content, so retried
        out["reason"], out["retry"] = f"cannot be read ({error.strerror or error}); tried again next run", True
    except Exception as error:  # a library bug on one file must not end the run
        out["reason"] = f"{type(error).__name__}: {error}"
    return out


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

    def __init__(self, root: Path, relative: list[str], preprocessors: dict, min_side: int):
        self.root, self.relative, self.preprocessors, self.min_side = root, relative, preprocessors, min_side

    def __len__(self):
        return len(self.relative)

    def __getitem__(self, i):
        return decode_one(self.root, self.relative[i], self.preprocessors, self.min_side)


def preprocessors_of(encoders: dict) -> tuple[dict, int]:
    """(role -> image processor, the shortest side a decode must keep) for ``encoders``."""
    return ({role: enc.processor.image_processor for role, enc in encoders.items()},
            max(enc.image_side for enc in encoders.values()))


def decode_loader(root: Path, todo: list[str], encoders: dict, batch_size: int, workers: int | None):
    """The local engine's decoding: batches of decoded items from DataLoader worker processes (also timed
    alone by the bench, as the decode half of the pipeline's limit)."""
    preprocessors, min_side = preprocessors_of(encoders)
    return worker_batches(DecodedFiles(root, todo, preprocessors, min_side), batch_size, workers, preprocessors)


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

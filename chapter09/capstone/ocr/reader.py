"""Text in photos: one OCR reader (RapidOCR: PaddleOCR's detector and recogniser as ONNX, Chinese and English).

``ocr_reader()`` gives this process's one ``OcrReader`` (its three ONNX sessions load once, about a second);
``OcrReader.read(image)`` returns the lines it found as ``OcrLine`` records (text, box, score), top to bottom.
Its ONNX Runtime sessions use ``threads`` intra-op threads (default: up to 4 of this machine's CPUs), so an OCR
pass beside the decode workers does not oversubscribe the CPU. Any object with a ``name`` and the same ``read``
is a reader too: the tests hand ``ocr_index`` one that returns known text (``FixedReader``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ...errors import SetupError, UsageError
from ...images import as_rgb

INSTALL = "pip install rapidocr-onnxruntime (requirements.txt has it)"
MAX_SIDE = 2000  # longer side an image is read at (RapidOCR's own cap): a 12 MP photo decodes and reads faster
MIN_SCORE = 0.5  # RapidOCR's own text_score: lines the recogniser is less sure of are dropped


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in an image: what it says, where (four (x, y) corners in the image as read, clockwise
    from the top left) and the recogniser's confidence (0-1)."""

    text: str
    box: tuple[tuple[float, float], ...]
    score: float

    def to_json(self) -> dict:
        return {"text": self.text, "box": [list(point) for point in self.box], "score": round(self.score, 4)}

    @staticmethod
    def from_json(data: dict) -> "OcrLine":
        return OcrLine(str(data["text"]), tuple(tuple(float(v) for v in p) for p in data["box"]), float(data["score"]))


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class OcrReader:
    """RapidOCR (detector, direction classifier, recogniser) behind one ``read``; ``ocr_reader()`` shares one."""

    name = "rapidocr"

    def __init__(self, threads: int | None = None, min_score: float = MIN_SCORE):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"OCR threads must be a whole number, 1 or more, not {threads!r}")
        if not 0.0 <= min_score <= 1.0:
            raise UsageError(f"the OCR minimum score must be between 0 and 1, not {min_score!r}")
        try:
            from rapidocr_onnxruntime import RapidOCR  # heavy (onnxruntime, cv2): only when text is read
        except ImportError:
            raise SetupError(f"reading text in photos (--ocr) needs RapidOCR: {INSTALL}") from None
        self.threads = threads or default_threads()
        self.min_score = min_score
        self._engine = RapidOCR(intra_op_num_threads=self.threads, inter_op_num_threads=1, text_score=min_score)

    def read(self, image) -> list[OcrLine]:
        """The lines of text in ``image`` (a PIL image or a path), top to bottom; [] when it holds none."""
        image = as_rgb(image)
        if max(image.size) > MAX_SIDE:
            image = image.copy()
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
        # RapidOCR takes OpenCV's BGR order for an array
        found, _ = self._engine(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]))
        lines = [OcrLine(str(text).strip(), tuple((float(x), float(y)) for x, y in box), float(score))
                 for box, text, score in (found or []) if str(text).strip() and float(score) >= self.min_score]
        return sorted(lines, key=lambda line: (min(y for _, y in line.box), min(x for x, _ in line.box)))


_readers: dict[int, OcrReader] = {}


def ocr_reader(threads: int | None = None) -> OcrReader:
    """This process's reader (one per thread count asked for; the models load once)."""
    threads = threads or default_threads()
    if threads not in _readers:
        _readers[threads] = OcrReader(threads)
    return _readers[threads]


class FixedReader:
    """A reader that returns known text: ``texts`` maps an image's top-left pixel colour (r, g, b) to its lines
    (strings). For tests and the toy world, where the point is the index and search around OCR, not reading."""

    name = "fixed"

    def __init__(self, texts: dict[tuple[int, int, int], list[str]]):
        self.texts = dict(texts)
        self.calls = 0

    def read(self, image) -> list[OcrLine]:
        self.calls += 1
        pixel = tuple(int(v) for v in as_rgb(image).getpixel((0, 0))[:3])
        return [OcrLine(text, ((0, 10.0 * i), (50, 10.0 * i), (50, 10.0 * i + 8), (0, 10.0 * i + 8)), 1.0)
                for i, text in enumerate(self.texts.get(pixel, []))]

"""Opening images safely: any mode becomes RGB, EXIF rotation is applied, bad files raise clearly.

Formats: whatever Pillow reads (JPEG, PNG, WebP, BMP, GIF, TIFF, and AVIF, which Pillow 12
decodes itself), plus HEIC/HEIF -- what iPhones save -- through pillow-heif, whose opener is
registered with Pillow once, when this module is imported. A HEIC's rotation is applied by
libheif while decoding (its EXIF orientation then reads 1), a JPEG's or AVIF's by
``ImageOps.exif_transpose``: either way the image comes out upright.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UsageError

try:  # HEIC/HEIF: registered once, on import, for every Image.open in the process
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # still listed in IMAGE_SUFFIXES, so the index reports why such a file failed
    HEIF_SUPPORTED = False
# What counts as an image file, in one place (the index's walk, the --type filter, search's image terms): Pillow's
# format names, lower-cased as the index stores them, and the file suffixes that mean each
FORMAT_SUFFIXES = {"jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"), "png": (".png",), "webp": (".webp",),
                   "heif": (".heic", ".heif", ".hif"), "avif": (".avif",), "gif": (".gif",),
                   "tiff": (".tif", ".tiff"), "bmp": (".bmp",)}
HEIF_SUFFIXES = set(FORMAT_SUFFIXES["heif"])
IMAGE_SUFFIXES = {suffix for suffixes in FORMAT_SUFFIXES.values() for suffix in suffixes}
# Videos the index samples frames of (``capstone.video``, decoded with PyAV): the common containers
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv")

# Refuse images above this many pixels (PIL's own default bomb limit is ~179 M, which
# decodes into ~0.5 GB of RAM; 100 M pixels is still a 10000 x 10000 photo).
MAX_PIXELS = 100_000_000


class BadImageError(UsageError):
    """A file that cannot be used as an image; the message says why."""


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Convert any PIL mode to RGB: alpha is composited on white, 16-bit is scaled, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":  # palette images may carry transparency
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS, min_side: int = 0, on_open=None) -> Image.Image:
    """Open ``path`` as an upright RGB image, or raise BadImageError saying why.

    With ``min_side``, a JPEG is decoded in draft mode: libjpeg scales by 1/2, 1/4 or 1/8
    while decoding, keeping at least ``min_side`` pixels on the short edge -- several times
    faster than a full decode followed by a resize, when the model needs only a few pixels.
    ``on_open(image)`` is called with the opened file before any decoding (the indexer reads the format,
    size and EXIF there, from the header already read, instead of opening the file a second time).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImageError(
                        f"{path}: {width}x{height} pixels is over the limit of {max_pixels:,}; "
                        "downscale it first")
                if on_open is not None:
                    on_open(image)
                if min_side and image.format == "JPEG":
                    image.draft("RGB", (min_side, min_side))
                image = ImageOps.exif_transpose(image)
                image.load()
                return to_rgb(image)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        if path.suffix.lower() in HEIF_SUFFIXES and not HEIF_SUPPORTED:
            raise BadImageError(f"{path}: HEIC/HEIF needs pillow-heif (`pip install pillow-heif`)") from None
        raise BadImageError(f"{path}: not an image PIL can read (unsupported format or not an image)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImageError(f"{path}: refused as a decompression bomb ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImageError(f"{path}: corrupt or truncated image ({error})") from None


def as_rgb(image_or_path, **load_options) -> Image.Image:
    """A PIL image converted to RGB, or a path opened with ``load_image``: what every encoder accepts."""
    if isinstance(image_or_path, Image.Image):
        return to_rgb(image_or_path)
    return load_image(image_or_path, **load_options)


def file_sha1(path: str | Path) -> str:
    """A file's content hash (SHA-1 of its bytes, read in 1 MB blocks): what the index and thumbnails key on."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""The pixels the chapter feeds the real CLIP and Chinese-CLIP equal the published recipes, computed here
independently with PIL (decode, bicubic resize) and numpy (mode conversion, crop, scaling, normalisation).

* OpenAI CLIP (``openai/clip-vit-base-patch32``, OpenAI's ``clip._transform``): resize the short side
  to 224 with bicubic (long side ``int(224 * long / short)``), centre crop 224 x 224, RGB, /255,
  normalise with mean (0.48145466, 0.4578275, 0.40821073), std (0.26862954, 0.26130258, 0.27577711).
* Chinese-CLIP (``OFA-Sys/chinese-clip-vit-base-patch16``, cn_clip's ``image_transform`` and the
  checkpoint's preprocessor_config.json): bicubic resize of the whole image to 224 x 224 -- the aspect
  ratio is NOT kept and nothing is cropped -- then the same scaling and normalisation.

Before that, the chapter's own decoding (``chapter09.images.load_image`` -> ``to_rgb``): EXIF rotation
applied, alpha composited on white, 16-bit greyscale scaled by 1/256, CMYK converted as PIL does
(``(255 - C) * (255 - K) / 255``, rounded). The reference re-does each of those in numpy.

Tolerance: 1e-6 absolute. Both sides resize the same uint8 image with PIL's bicubic filter, so they
agree on every 8-bit value; what is left is float32 rounding of values in [-1.8, 2.2] (eps 1.2e-7 x 2.2
= 2.6e-7; measured at most 2.9e-7). One grey level is 1 / 255 / 0.27 = 0.0146, so a 1e-6 bound leaves
no room for any off-by-one pixel value, resize filter, crop offset or channel-order slip.
"""
from __future__ import annotations

import numpy as np
import pytest
import real_artifacts as ra
from PIL import Image

from chapter09.config import ASSETS_DIR

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MEAN, STD = np.array(ra.CLIP_MEAN), np.array(ra.CLIP_STD)
TOLERANCE = 1e-6
PHOTOS = sorted((ASSETS_DIR / "photos").glob("*.jpg"))


# ----------------------------------------------------------------------------- the reference, in numpy
def reference_rgb(path) -> np.ndarray:
    """Decode with PIL; every mode conversion in numpy, as the chapter documents it."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        mode, array = image.mode, np.asarray(image)
    if mode == "CMYK":
        c, m, y, k = (array[..., i].astype(np.float64) for i in range(4))
        array = np.stack([(255 - c) * (255 - k), (255 - m) * (255 - k), (255 - y) * (255 - k)], -1) / 255
        array = np.round(array)
    elif mode == "RGBA":
        alpha = array[..., 3:].astype(np.float64)
        array = np.round((array[..., :3] * alpha + 255 * (255 - alpha)) / 255)
    elif mode.startswith("I;16") or mode == "I":
        array = np.repeat((array.astype(np.uint32) >> 8)[..., None], 3, axis=-1)
    elif mode == "L":
        array = np.repeat(array[..., None], 3, axis=-1)
    array = array.astype(np.uint8)
    if orientation == 6:  # "rotate 90 CW to display"
        array = np.rot90(array, k=-1)
    elif orientation == 8:
        array = np.rot90(array, k=1)
    elif orientation == 3:
        array = np.rot90(array, k=2)
    return np.ascontiguousarray(array)


def _normalise(array: np.ndarray) -> np.ndarray:
    return ((array.astype(np.float64) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def clip_recipe(rgb: np.ndarray, side: int = 224, crop_rounding=round) -> np.ndarray:
    """OpenAI's recipe; ``crop_rounding`` is torchvision CenterCrop's ``round`` (half to even)."""
    height, width = rgb.shape[:2]
    if width <= height:
        new_w, new_h = side, int(side * height / width)
    else:
        new_w, new_h = int(side * width / height), side
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BICUBIC))
    top, left = int(crop_rounding((new_h - side) / 2)), int(crop_rounding((new_w - side) / 2))
    return _normalise(resized[top:top + side, left:left + side])


def chinese_clip_recipe(rgb: np.ndarray, side: int = 224) -> np.ndarray:
    return _normalise(np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC)))


# ----------------------------------------------------------------------------- awkward images
@pytest.fixture(scope="module")
def awkward(tmp_path_factory) -> dict:
    """Files a learner's library holds besides plain RGB JPEGs, made from the repo's photos."""
    folder = tmp_path_factory.mktemp("awkward")
    photo = Image.open(ASSETS_DIR / "photos" / "astronaut.jpg").convert("RGB")
    rng = np.random.default_rng(0)
    files = {}

    def keep(name, image, **kwargs):
        image.save(folder / name, **kwargs)
        files[name] = folder / name

    keep("portrait.jpg", photo.resize((240, 700), Image.BICUBIC), quality=92)
    keep("panorama.jpg", photo.resize((1800, 300), Image.BICUBIC), quality=92)
    keep("cmyk.jpg", photo.convert("CMYK"), quality=92)
    rgba = np.dstack([np.asarray(photo), np.tile(np.linspace(0, 255, 384, dtype=np.uint8), (384, 1))])
    keep("alpha.png", Image.fromarray(rgba, "RGBA"))
    grey16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 256 + rng.integers(0, 256, (384, 384))).astype(np.uint16)
    keep("grey16.png", Image.fromarray(grey16))
    keep("greyscale.jpg", photo.convert("L"), quality=92)
    rotated = Image.open(ASSETS_DIR / "photos" / "cat.jpg")
    exif = rotated.getexif()
    exif[0x0112] = 6
    keep("exif_rotated.jpg", rotated, exif=exif, quality=95)
    keep("tiny.png", photo.resize((50, 80), Image.BICUBIC))  # upscaled to 224
    # (long - 224) % 4 == 3: the one shape where transformers' crop and torchvision's differ (below)
    keep("odd_crop.png", Image.fromarray(rng.integers(0, 256, (224, 227, 3), dtype=np.uint8)))
    return files


def test_awkward_files_are_what_they_claim(awkward):
    modes = {name: Image.open(path).mode for name, path in awkward.items()}
    assert modes["cmyk.jpg"] == "CMYK" and modes["alpha.png"] == "RGBA" and modes["greyscale.jpg"] == "L"
    assert modes["grey16.png"] in ("I;16", "I") and Image.open(awkward["exif_rotated.jpg"]).getexif()[0x0112] == 6


def test_the_chapter_decodes_as_the_reference(awkward):
    from chapter09.images import load_image

    for path in [*PHOTOS, *awkward.values()]:
        assert np.array_equal(np.asarray(load_image(path)), reference_rgb(path)), path.name


# ----------------------------------------------------------------------------- what the models are fed
def fed_pixels(encoder, path) -> np.ndarray:
    """The pixel tensor ``ClipEncoder.encode_images`` hands the model for one image file."""
    seen = []
    original = encoder.model.get_image_features

    def recording(pixel_values, **kwargs):
        seen.append(pixel_values.detach().float().cpu().numpy())
        return original(pixel_values=pixel_values, **kwargs)

    encoder.model.get_image_features = recording
    try:
        vectors = encoder.encode_images([path])
    finally:
        del encoder.model.get_image_features  # back to the class's method
    assert vectors.shape == (1, 512) and len(seen) == 1 and seen[0].shape == (1, 3, 224, 224)
    return seen[0][0]


def _check(encoder, recipe, paths):
    worst = {}
    for path in paths:
        difference = np.abs(fed_pixels(encoder, path).astype(np.float64) - recipe(reference_rgb(path)))
        worst[path.name] = float(difference.max())
    assert max(worst.values()) < TOLERANCE, worst


def test_clip_is_fed_openai_recipe_on_the_photos(real_clip):
    assert len(PHOTOS) >= 9
    _check(real_clip, clip_recipe, PHOTOS)


def test_clip_is_fed_openai_recipe_on_awkward_images(real_clip, awkward):
    _check(real_clip, clip_recipe, [p for name, p in awkward.items() if name != "odd_crop.png"])


def test_clip_centre_crop_offset_when_the_margin_is_3_mod_4(real_clip, awkward):
    """Known, documented difference of transformers' CLIPImageProcessor from OpenAI's torchvision
    recipe: the crop's top-left is ``(size - 224) // 2`` there and ``round((size - 224) / 2)`` (half to
    even) in torchvision, one pixel apart when ``size - 224`` is 3 mod 4 (227, 231, 235, ... pixels
    after the resize): a one-pixel shift of the crop, on rare aspect ratios, for every user of
    the hub checkpoint. The chapter feeds what transformers computes; this test pins both facts."""
    path = awkward["odd_crop.png"]
    fed, rgb = fed_pixels(real_clip, path).astype(np.float64), reference_rgb(path)
    assert np.abs(fed - clip_recipe(rgb, crop_rounding=lambda x: np.floor(x))).max() < TOLERANCE
    assert np.abs(fed - clip_recipe(rgb)).max() > 0.5  # one pixel left of torchvision's crop


def test_chinese_clip_is_fed_its_recipe(real_chinese_clip, awkward):
    _check(real_chinese_clip, chinese_clip_recipe, [*PHOTOS, *awkward.values()])


def test_bf16_feeds_the_same_pixels_rounded(real_clip, real_clip_dir):
    """In bf16 (the default on CPUs with AVX-512 BF16) the fed tensor is exactly the fp32 one cast to bf16."""
    import torch

    from chapter09.clip import ClipEncoder
    from chapter09.models import Settings

    encoder = ClipEncoder("clip", Settings(mode="real", device="cpu", dtype="bfloat16"), local_dir=real_clip_dir)
    for path in PHOTOS[:2]:
        fp32 = torch.from_numpy(fed_pixels(real_clip, path))
        assert torch.equal(torch.from_numpy(fed_pixels(encoder, path)), fp32.to(torch.bfloat16).float())

import pytest
from PIL import Image

from chapter09.images import BadImageError, load_image, to_rgb


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb(mode, tmp_path):
    image = Image.new("RGB", (20, 10), (200, 30, 30)).convert(mode)
    assert to_rgb(image).mode == "RGB" and to_rgb(image).size == (20, 10)


def test_sixteen_bit_is_scaled_not_clipped():
    image = Image.new("I;16", (4, 4), 32768)
    assert to_rgb(image).getpixel((0, 0))[0] == 128


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (10, 30)


def test_bad_files_raise_a_clear_error(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "ok.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    for name, reason in [("empty.jpg", "empty"), ("text.png", "not an image"), ("truncated.png", "corrupt")]:
        with pytest.raises(BadImageError, match=reason):
            load_image(tmp_path / name)
    with pytest.raises(BadImageError, match="over the limit"):
        load_image(tmp_path / "ok.png", max_pixels=1000)


def _marked(size=(60, 24)):
    """A red picture whose left quarter is blue: where the blue ends up shows the rotation."""
    image = Image.new("RGB", size, (220, 20, 20))
    image.paste((20, 20, 220), (0, 0, size[0] // 4, size[1]))
    return image


@pytest.mark.parametrize("suffix", [".heic", ".avif", ".jpg"])
def test_heic_and_avif_open_upright_like_jpeg(suffix, tmp_path):
    from chapter09.images import IMAGE_SUFFIXES

    assert suffix in IMAGE_SUFFIXES
    image = _marked()
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the blue left edge ends up at the top
    path = tmp_path / f"rotated{suffix}"
    image.save(path, exif=exif.tobytes(), quality=90)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (24, 60)
    top, bottom = loaded.getpixel((12, 3)), loaded.getpixel((12, 56))
    assert top[2] > 150 and top[0] < 100, top  # blue on top
    assert bottom[0] > 150 and bottom[2] < 100, bottom  # red below
    # without a tag the same file type opens as saved
    _marked().save(tmp_path / f"plain{suffix}", quality=90)
    assert load_image(tmp_path / f"plain{suffix}").size == (60, 24)


def test_heic_is_opened_through_pillow_heif(tmp_path):
    from chapter09.images import HEIF_SUPPORTED

    assert HEIF_SUPPORTED, "pillow-heif is in requirements.txt"
    _marked().save(tmp_path / "photo.heic")
    with Image.open(tmp_path / "photo.heic") as image:
        assert image.format == "HEIF"

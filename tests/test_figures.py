"""Figures can show Chinese with the font the project installs, and the shared drawings stay legible."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.unit


def _render(text: str, fontsize: int = 28) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1.2, 0.8), dpi=50)
    figure.text(0.1, 0.3, text, fontsize=fontsize)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return pixels


def test_the_cjk_font_comes_from_the_pinned_package_and_chinese_renders_without_tofu():
    from chapter09 import figures

    path = figures.cjk_font_path()
    assert path is not None and path.name == "NotoSansCJKsc-Regular.otf" and figures.CJK_FONT_PACKAGE in path.parts
    assert figures.use_cjk_font() == "Noto Sans CJK SC"
    assert figures.use_cjk_font() == "Noto Sans CJK SC"  # a second call changes nothing

    import matplotlib

    assert matplotlib.rcParams["font.family"][:2] == ["DejaVu Sans", "Noto Sans CJK SC"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for every tofu box
        red, colour, latin = _render("红"), _render("色"), _render("a")
    # a missing glyph is drawn as the same empty box for every character; real glyphs differ
    assert (red != colour).any() and (red < 128).any() and (colour < 128).any() and (latin < 128).any()


def test_wrap_breaks_english_at_spaces_and_chinese_between_characters():
    from chapter09.figures import wrap

    english = wrap("a large orange diamond at the top left and a small orange diamond at the top", 30)
    assert all(len(line) <= 30 for line in english.split("\n")) and "diam\nond" not in english
    chinese = wrap("左上方有一个大的橙色菱形，上方有一个小的橙色菱形。", 20)
    assert [len(line) for line in chinese.split("\n")] == [10, 10, 5]


def test_similarity_figure_numbers_its_columns_and_writes_every_caption_in_the_key():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from chapter09.figures import similarity_figure, use_cjk_font

    use_cjk_font()
    images = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    english = ["a long caption number one about a red thing", "caption two, green", "caption three is blue"]
    chinese = ["红色", "绿色", "蓝色"]
    similarity = np.array([[0.9, 0.1, 0.2], [0.1, 0.2, 0.8], [0.0, 0.1, 0.7]])  # row 2 misses
    figure = similarity_figure(images, {"English": (english, similarity), "中文": (chinese, similarity)}, "test")
    heat_maps = [axis for axis in figure.axes if axis.images and axis.get_title()]
    assert len(heat_maps) == 2
    for axis in heat_maps:
        assert [tick.get_text() for tick in axis.get_xticklabels()] == ["1", "2", "3"]
        assert "2 of 3" in axis.get_title()
        assert sum(p.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for p in axis.patches) == 1  # the miss, in red
    key = "\n".join(text.get_text() for axis in figure.axes for text in axis.texts)
    assert all(caption in key for caption in english + chinese)
    figure.canvas.draw()  # the tick labels are short numbers: no two overlap
    for axis in heat_maps:
        boxes = [label.get_window_extent() for label in axis.get_xticklabels()]
        assert all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:]))
    plt.close(figure)


def test_readme_pictures_are_the_commands_own_small_pngs_and_all_exist():
    import re

    from PIL import Image

    from chapter09 import config, readme_pictures

    readme = (config.REPO_DIR / "README.md").read_text(encoding="utf-8")
    referenced = re.findall(r"!\[[^\]]*\]\(assets/readme/([^)]+)\)", readme)
    made = set(readme_pictures.LESSON_FIGURES) | {readme_pictures.WEB_UI}
    assert referenced and set(referenced) <= made  # every picture in the README is one the command makes
    for name in referenced:
        path = readme_pictures.PICTURES_DIR / name
        assert path.stat().st_size < 150_000, name
        assert 600 <= Image.open(path).width <= 1600, name

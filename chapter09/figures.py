"""Figures that read in both languages, at the size they are saved.

Chinese needs a CJK font, and none is assumed on the machine: ``use_cjk_font`` registers
Noto Sans CJK SC (SIL Open Font License), shipped inside the pinned PyPI package
``mplfonts`` (requirements.txt), with matplotlib at run time. Latin text stays in
matplotlib's DejaVu Sans; each glyph DejaVu Sans lacks (every Chinese character) is drawn
from Noto Sans CJK SC, glyph by glyph. ``lesson.start`` calls it, so every lesson's figures
can show Chinese.

The drawings lessons share live here too, so the lessons read as lessons:
``similarity_figure`` (9.2, and the README's heat-map), ``probability_heatmaps`` (9.2's softmax,
drawn with seaborn) and ``caption_figure`` (9.4); and
``compact_png``, which stores a figure in a third of the bytes for the committed notebooks
and the README pictures.
"""
from __future__ import annotations

import importlib.util
import io
import textwrap
import warnings
from pathlib import Path

from .language import has_chinese

CJK_FONT_PACKAGE = "mplfonts"  # pinned in requirements.txt
CJK_FONT_FILE = ("fonts", "NotoSansCJKsc-Regular.otf")
LATIN_FONT = "DejaVu Sans"  # matplotlib's own font, always there

MAX_PALETTE_ERROR = 24  # grey levels (of 255) a 256-colour copy may be off by, anywhere, and still be used

_registered: str | None = None


def cjk_font_path() -> Path | None:
    """The CJK font file inside the installed font package, or None. Finds the package without importing it."""
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *CJK_FONT_FILE)
    return path if path.is_file() else None


def use_cjk_font() -> str | None:
    """Register the CJK font with matplotlib and make it the fallback after DejaVu Sans; return its family name.

    Safe to call any number of times. Without the font package it warns once and returns None
    (Chinese then shows as empty boxes)."""
    global _registered
    import matplotlib
    from matplotlib import font_manager

    if _registered is None:
        path = cjk_font_path()
        if path is None:
            warnings.warn(f"no CJK font: `pip install {CJK_FONT_PACKAGE}` (see requirements.txt); "
                          "Chinese text in figures will show as boxes", stacklevel=2)
            _registered = ""
            return None
        if not any(Path(entry.fname) == path for entry in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(str(path))
        _registered = font_manager.FontProperties(fname=str(path)).get_name()  # "Noto Sans CJK SC"
    if not _registered:
        return None
    families = [LATIN_FONT, _registered]
    # a list of families (not the generic "sans-serif") is what turns on matplotlib's per-glyph fallback
    matplotlib.rcParams["font.family"] = families
    matplotlib.rcParams["font.sans-serif"] = families + [f for f in matplotlib.rcParams["font.sans-serif"]
                                                         if f not in families]
    return _registered


def wrap(text: str, width: int) -> str:
    """``text`` broken into lines of about ``width`` Latin characters. Chinese has no spaces and each
    character is about twice as wide, so it breaks between characters at half the width."""
    if has_chinese(text):
        step = max(1, width // 2)
        return "\n".join(text[i:i + step] for i in range(0, len(text), step))
    return "\n".join(textwrap.wrap(text, width)) or text


def similarity_figure(images, panels: dict, title: str, lang: str = "en", glosses: list[str] | None = None):
    """Heat-maps of cosine similarity, images (rows) x captions (columns), one per language.

    ``panels`` maps a panel title to ``(captions, similarity)``; caption ``j`` belongs to image
    ``j``. Columns are numbered and the captions are written out in a key below, so long
    captions never collide; the true pairs (the diagonal) are outlined in white, and a row
    whose best score falls elsewhere gets a red dashed box there. ``lang``: "en" or "zh", the language of the
    figure's own labels; ``glosses``: optional lines written under each caption in the key (a translation of
    a caption the model read in another language)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    n, titles = len(images), list(panels)
    zh = lang == "zh"
    key_lines = 1 + n * len(panels) + (n if glosses else 0)
    row_in, key_in = 0.7, 0.19  # inches per heat-map row, per line of the key
    figure = plt.figure(figsize=(5.2 * len(panels) + 1.4, row_in * n + 1.6 + key_in * key_lines))
    grid = figure.add_gridspec(2, len(panels) + 1, width_ratios=[1.4 / 5.2] + [1] * len(panels),
                               height_ratios=[row_in * n + 0.9, key_in * key_lines], hspace=0.16, wspace=0.05)
    thumbs = figure.add_subplot(grid[0, 0])
    thumbs.imshow(np.concatenate([np.asarray(image.convert("RGB").resize((64, 64))) for image in images]),
                  extent=(0, 1, n - 0.5, -0.5))
    thumbs.set_anchor("E")  # square thumbnails, right next to the first heat-map
    thumbs.set_xticks([])
    thumbs.set_yticks(range(n), [f"图像 {i + 1}" if zh else f"image {i + 1}" for i in range(n)], fontsize=9)
    for spine in thumbs.spines.values():
        spine.set_visible(False)
    for column, name in enumerate(titles, start=1):
        captions, similarity = panels[name]
        similarity = np.asarray(similarity, dtype=float)
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(similarity, cmap="viridis", vmin=-1, vmax=1, aspect="auto")
        best = similarity.argmax(axis=1)
        for i in range(similarity.shape[0]):
            for j in range(similarity.shape[1]):
                axis.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=9,
                          color="black" if similarity[i, j] > 0.35 else "white")
            axis.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2.5))
            if best[i] != i:  # this row's best score is another image's caption: a miss
                axis.add_patch(Rectangle((best[i] - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="red",
                                         linestyle="--", linewidth=2))
        axis.set_xticks(range(len(captions)), [str(j + 1) for j in range(len(captions))], fontsize=9)
        axis.set_yticks([])
        wins = int((best == np.arange(len(best))).sum())
        axis.set_title(f"{name}\n{len(best)} 张图像中有 {wins} 张与自己的描述得分最高" if zh else
                       f"{name}\n{wins} of {len(best)} images score highest with their own caption", fontsize=10)
        axis.set_xlabel("描述编号（全文见下方对照表）" if zh else "caption number (the key is below)", fontsize=9)
    key = figure.add_subplot(grid[1, :])
    key.axis("off")
    lines = ["白框：图像自己的描述。红色虚线框：这一行的最高分落在了别的图像的描述上。" if zh else
             "White box: the image's own caption. Red dashed box: a row whose highest score is another image's caption."]
    for j in range(n):
        for index, name in enumerate(titles):
            caption = panels[name][0][j]
            lines.append(f"{j + 1:>2}. {caption}" if index == 0 else f"     {caption}")
        if glosses:
            lines.append(f"     {glosses[j]}")
    key.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8.5, linespacing=1.45, transform=key.transAxes)
    figure.suptitle(title, fontsize=12)
    return figure


def probability_heatmaps(panels: dict, title: str):
    """Annotated heat-maps (seaborn) of softmax probabilities, one per panel: ``panels`` maps a panel title
    to a square matrix whose row i should put its mass on column i. Leaves matplotlib's fonts alone (no
    ``seaborn.set_theme``), so the CJK fallback of ``use_cjk_font`` keeps working in titles."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.6, 4.4), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], panels.items()):
        matrix = np.asarray(matrix, dtype=float)
        labels = [str(i + 1) for i in range(len(matrix))]
        sns.heatmap(matrix, ax=axis, vmin=0, vmax=1, cmap="rocket_r", annot=True, fmt=".2f", square=True,
                    cbar=False, xticklabels=labels, yticklabels=labels, annot_kws={"fontsize": 9},
                    linewidths=0.5, linecolor="white")
        axis.set_title(name, fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def patch_grid_figure(image, patch_size: int, title: str):
    """A vision transformer's view of one image: ``image`` (channels x height x width, values 0-1, as the
    model's input after undoing the normalisation) with its patch grid drawn over it and each patch numbered
    in the order it becomes a token (token 0 is CLS, which has no patch)."""
    import matplotlib.pyplot as plt
    import numpy as np

    pixels = np.clip(np.asarray(image, dtype=float), 0, 1).transpose(1, 2, 0)
    height, width = pixels.shape[:2]
    figure, axis = plt.subplots(figsize=(6.4, 6.6))
    axis.imshow(pixels, extent=(0, width, height, 0), interpolation="nearest")
    for edge in range(0, max(height, width) + 1, patch_size):
        axis.axhline(edge, color="black", linewidth=0.8)
        axis.axvline(edge, color="black", linewidth=0.8)
    per_row = width // patch_size
    for row in range(height // patch_size):
        for column in range(per_row):
            axis.text((column + 0.5) * patch_size, (row + 0.5) * patch_size, str(1 + row * per_row + column),
                      ha="center", va="center", fontsize=7, color="black", alpha=0.6)
    axis.set_xticks(range(0, width + 1, patch_size))
    axis.set_yticks(range(0, height + 1, patch_size))
    axis.tick_params(labelsize=8)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def caption_figure(images, captions: dict, title: str, width: int = 44):
    """Images in a row, each with its caption in every language underneath (``captions`` maps a
    label such as "en" to one caption per image)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(images), figsize=(3.3 * len(images), 4.6), squeeze=False)
    for index, (axis, image) in enumerate(zip(axes[0], images)):
        axis.imshow(image)
        axis.set_xticks([])
        axis.set_yticks([])
        text = "\n".join(f"{label}: {wrap(texts[index], width)}" for label, texts in captions.items())
        axis.text(0, -0.04, text, transform=axis.transAxes, va="top", ha="left", fontsize=8, linespacing=1.35)
    figure.suptitle(title, fontsize=12)
    figure.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.3, wspace=0.08)
    return figure


def compact_png(data: bytes) -> bytes:
    """The PNG ``data`` with a 256-colour palette, when no pixel moves by more than ``MAX_PALETTE_ERROR``
    levels (plots have few colours; even 9.1's photo stays within 14); otherwise the original, re-compressed.
    Colours matter here: the toy world's captions name them."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    palette = image.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, kmeans=4, dither=Image.Dither.NONE)
    error = np.abs(np.asarray(palette.convert("RGB"), dtype=int) - np.asarray(image, dtype=int)).max()
    out = io.BytesIO()
    (palette if error <= MAX_PALETTE_ERROR else image).save(out, format="PNG", optimize=True)
    return out.getvalue() if len(out.getvalue()) < len(data) else data

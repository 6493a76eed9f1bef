"""Text in photos: how much of the text rendered onto images ``search --ocr-text`` finds, how fast RapidOCR reads,
and its share of an ``index --ocr`` run.

    python -m chapter09.capstone.bench.ocr [--images 120] [--seed 5] [--k 5] [--json]

What it does: renders English words and Chinese phrases (Simplified, and a third of the Chinese in Traditional
characters) onto ``--images`` images with PIL, in three layouts: *signs* (one or two words on a panel over a crop
of the repository's photos, ``assets/photos``, or a plain colour; 30-64 px, rotated up to 6 degrees), *receipts*
(4-6 item lines on paper, 20-28 px) and *screenshots* (a title and lines of an app, 16-24 px); fonts: DejaVu Sans
Bold, Serif and Mono for English, a CJK font found with ``fc-list :lang=zh`` for Chinese. Then it indexes the
images twice with the toy CLIP, without and with ``--ocr`` (the real RapidOCR models), and reports

* ``read_recall``: the share of rendered (image, word) pairs whose word the OCR text of that image holds (as
  ``ocr_text.matched_words`` compares: case-folded, Traditional read as Simplified), per language and layout;
* ``search_recall``: for each pair, the word as an ``--ocr-text`` query: is the image among the first ``k`` results
  after the other images that hold the same word (they rank alike; the depth is ``k`` + their number)?
* ``ocr_images_per_s`` (images read over the seconds from the first read to the last, the reader loaded before)
  and ``ocr_share``: the OCR pass's seconds over the ``--ocr`` run's.

The CPU line comes first, as in the other bench parts. The toy CLIP encodes far faster than a real CLIP, so
``ocr_share`` is an upper bound for a real index.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from opencc import OpenCC
from PIL import Image, ImageDraw, ImageFont

from ... import cpu
from ...clip import clip_encoder
from ...models import Settings
from ..index.build import build_index
from ..ocr.run import ocr_rows
from ..ocr.text_search import matched_words, ocr_ranking
from ..store.database import Store

LATIN_FONTS = [f"/usr/share/fonts/truetype/dejavu/{name}.ttf" for name in ("DejaVuSans-Bold", "DejaVuSerif",
                                                                          "DejaVuSansMono")]
ENGLISH = ("exit coffee parking receipt total open closed sale menu ticket station pharmacy bakery hotel taxi "
           "library museum garden welcome entrance toilet market bridge airport bus train platform hospital police "
           "school bank post office cinema theatre noodles tea water juice bread cheese apple orange").split()
CHINESE = ("出口 咖啡 停车场 收据 合计 营业中 欢迎光临 地铁站 药店 面包店 酒店 出租车 图书馆 博物馆 花园 禁止吸烟 洗手间 "
           "入口 售票处 超市 机场 火车站 医院 学校 银行 邮局 电影院 面条 绿茶 矿泉水 苹果 橙汁 蛋糕 牛奶 书店 公园").split()
SIZE = (640, 480)
PHOTOS = Path(__file__).resolve().parents[3] / "assets" / "photos"


def cjk_font() -> str | None:
    """A font file with Chinese glyphs on this machine (``fc-list :lang=zh``), or None."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    files = sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip())
    return files[0] if files else None


def _words(rng: random.Random, n_en: int, n_zh: int) -> list[tuple[str, str, str]]:
    """(lang, as written, as searched) for n_en English words and n_zh Chinese phrases (some written Traditional)."""
    to_traditional = OpenCC("s2t")
    out = [("en", w.upper() if rng.random() < 0.5 else w.capitalize(), w) for w in rng.sample(ENGLISH, n_en)]
    for phrase in rng.sample(CHINESE, n_zh):
        written = to_traditional.convert(phrase) if rng.random() < 1 / 3 else phrase
        out.append(("zh" if written == phrase else "zh-hant", written, phrase))
    return out


def _background(rng: random.Random, photos: list[Path]) -> Image.Image:
    if photos and rng.random() < 0.6:  # a crop of a real photo
        with Image.open(rng.choice(photos)) as photo:
            photo = photo.convert("RGB")
            w, h = photo.size
            side = min(w, h, max(SIZE))
            x, y = rng.randrange(w - side + 1), rng.randrange(h - side + 1)
            return photo.crop((x, y, x + side, y + side * SIZE[1] // SIZE[0])).resize(SIZE)
    return Image.new("RGB", SIZE, tuple(rng.randrange(60, 240) for _ in range(3)))


def render(rng: random.Random, layout: str, fonts: dict, photos: list[Path]) -> tuple[Image.Image, list]:
    """One image of ``layout`` and the words written on it: [(lang, written, searched)]."""
    def font(lang, size):
        return ImageFont.truetype(fonts["zh"] if lang.startswith("zh") else rng.choice(fonts["en"]), size)

    if layout == "sign":
        words = _words(rng, *rng.choice([(1, 0), (0, 1), (1, 1)]))
        image = _background(rng, photos)
        panel = Image.new("RGB", (560, 90 * len(words) + 40), rng.choice([(250, 250, 245), (20, 90, 40), (30, 30, 120)]))
        ink = (20, 20, 20) if sum(panel.getpixel((0, 0))) > 400 else (250, 250, 250)
        draw = ImageDraw.Draw(panel)
        for i, (lang, written, _) in enumerate(words):
            draw.text((24, 20 + 90 * i), written, fill=ink, font=font(lang, rng.randrange(30, 64)))
        panel = panel.rotate(rng.uniform(-6, 6), expand=True, fillcolor=image.getpixel((0, 0)))
        image.paste(panel, ((SIZE[0] - panel.width) // 2, max(0, (SIZE[1] - panel.height) // 2)))
        return image, words
    words = _words(rng, *(rng.choice([(3, 2), (2, 3), (4, 1)]) if layout == "receipt" else rng.choice([(2, 1), (1, 2)])))
    paper = (250, 248, 240) if layout == "receipt" else rng.choice([(245, 246, 250), (32, 34, 40)])
    ink = (30, 30, 30) if sum(paper) > 400 else (230, 230, 230)
    image = Image.new("RGB", SIZE, paper)
    draw = ImageDraw.Draw(image)
    if layout == "screenshot":
        draw.rectangle((0, 0, SIZE[0], 40), fill=(60, 110, 200))
    y = 60
    for lang, written, _ in words:
        size = rng.randrange(20, 29) if layout == "receipt" else rng.randrange(16, 25)
        line = f"{written}   {rng.randrange(1, 99)}.{rng.randrange(10, 99)}" if layout == "receipt" else written
        draw.text((40, y), line, fill=ink, font=font(lang, size))
        y += size + rng.randrange(14, 30)
    return image, words


def make_images(folder: Path, n: int, seed: int) -> list[dict]:
    fonts = {"en": [f for f in LATIN_FONTS if Path(f).is_file()], "zh": cjk_font()}
    if not fonts["en"] or fonts["zh"] is None:
        raise SystemExit("bench.ocr needs the DejaVu fonts and a CJK font: apt-get install fonts-dejavu-core "
                         "fonts-wqy-microhei")
    rng = random.Random(seed)
    photos = sorted(PHOTOS.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        layout = ("sign", "receipt", "screenshot")[i % 3]
        image, words = render(rng, layout, fonts, photos)
        name = f"{layout}_{i:04d}.jpg"
        image.save(folder / name, quality=90)
        out.append({"path": name, "layout": layout, "words": words})
    return out


def measure(rendered: list[dict], library: Path, workdir: Path, k: int) -> dict:
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    t = time.time()
    build_index(library, workdir / "plain", encoders, workers=0, progress=False)
    plain_s = time.time() - t
    t = time.time()
    summary = build_index(library, workdir / "ocr", encoders, workers=0, progress=False, ocr=True)
    ocr_run_s = time.time() - t
    holders: dict[str, set] = {}
    for item in rendered:
        for _, _, searched in item["words"]:
            holders.setdefault(searched, set()).add(item["path"])
    read, found = {}, {}
    with Store.open(workdir / "ocr") as store:
        rows = ocr_rows(store)
        for item in rendered:
            for lang, written, searched in item["words"]:
                for key in (lang, item["layout"], "all"):
                    read.setdefault(key, []).append(searched in matched_words(searched, rows[item["path"]]["text"]))
                ranked = [p for p, _ in ocr_ranking(store, searched, k + len(holders[searched]) - 1)]
                for key in (lang, item["layout"], "all"):
                    found.setdefault(key, []).append(item["path"] in ranked)
    share = summary.ocr["seconds"] / max(ocr_run_s, 1e-9)
    return {"images": len(rendered), "pairs": len(read["all"]), "k": k,
            "read_recall": {key: round(sum(v) / len(v), 3) for key, v in sorted(read.items())},
            "search_recall": {key: round(sum(v) / len(v), 3) for key, v in sorted(found.items())},
            "ocr_images_per_s": summary.ocr["images_per_s"], "ocr_s": summary.ocr["seconds"],
            "index_without_ocr_s": round(plain_s, 2), "index_with_ocr_s": round(ocr_run_s, 2),
            "ocr_share": round(share, 3), "ocr_threads": __import__("chapter09.capstone.ocr.reader", fromlist=["x"])
            .default_threads(), "misread": [(item["path"], w[1], rows[item["path"]]["text"]) for item in rendered
                                             for w in item["words"] if w[2] not in matched_words(
                                                 w[2], rows[item["path"]]["text"])][:15]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--workdir", default=None, help="keep the images and indexes here (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    print(f"bench.ocr on {cpu.describe()}; load average {[round(x, 2) for x in os.getloadavg()]}", flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(args.workdir or temporary)
        rendered = make_images(workdir / "library", args.images, args.seed)
        report = measure(rendered, workdir / "library", workdir, args.k)
    report.update(cpu=cpu.describe(), load_after=[round(x, 2) for x in os.getloadavg()])
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['images']} images, {report['pairs']} rendered words; OCR {report['ocr_images_per_s']} images/s "
              f"({report['ocr_threads']} threads), {report['ocr_share']:.0%} of the index --ocr run "
              f"({report['index_with_ocr_s']} s with, {report['index_without_ocr_s']} s without)")
        for name in ("read_recall", "search_recall"):
            print(f"  {name}: " + ", ".join(f"{key} {value:.3f}" for key, value in report[name].items()))
        for path, written, text in report["misread"]:
            print(f"  missed {written!r} in {path}: read {text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Synthetic scenes of coloured shapes, described in English and Chinese, with questions about them.

Scenes like "a small red circle at the top left and a large blue star in the center". A scene holds 1-3 objects, each with a colour (6), shape (5), size (2) and a
cell of a 3x3 grid (9 positions). Captions name every attribute of every
object, so within one data set (scene keys are unique) a caption picks out
exactly one image. The ``heldout`` split draws from all 30 colour x shape
combinations; the ``train`` split never shows the six in ``HELDOUT_COMBOS``.

The ``hard`` split is held out too, and made to tell methods apart the way ARO
(Yuksekgonul et al., arXiv 2210.01936) and Winoground (Thrush et al., arXiv 2204.03162)
do for real models: 2-4 objects (training shows at most 3), in families of three scenes
whose captions hold exactly the same words: a scene, its *binding swap* (two objects trade
colours: "a red circle and a blue star" -> "a blue circle and a red star") and its
*position swap* (two objects trade places). A model that reads a caption as a bag of
words cannot tell a family apart; ``HARD_VARIANTS`` names the three.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw

# name -> (Chinese, RGB)
COLOURS = {
    "red": ("红色", (215, 38, 38)),
    "orange": ("橙色", (245, 140, 20)),
    "yellow": ("黄色", (235, 205, 25)),
    "green": ("绿色", (35, 160, 60)),
    "blue": ("蓝色", (40, 85, 225)),
    "purple": ("紫色", (135, 55, 180)),
}
SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形", "diamond": "菱形"}
SIZES = {"small": "小", "large": "大"}
# grid cell (row, col) -> (English phrase, short English answer, Chinese)
POSITIONS = {
    (0, 0): ("at the top left", "top left", "左上方"),
    (0, 1): ("at the top", "top", "上方"),
    (0, 2): ("at the top right", "top right", "右上方"),
    (1, 0): ("on the left", "left", "左边"),
    (1, 1): ("in the center", "center", "中间"),
    (1, 2): ("on the right", "right", "右边"),
    (2, 0): ("at the bottom left", "bottom left", "左下方"),
    (2, 1): ("at the bottom", "bottom", "下方"),
    (2, 2): ("at the bottom right", "bottom right", "右下方"),
}
# Colour x shape pairs that the training split never shows (one per colour).
HELDOUT_COMBOS = frozenset({
    ("red", "star"), ("orange", "diamond"), ("yellow", "circle"),
    ("green", "square"), ("blue", "triangle"), ("purple", "star"),
})
NUMBERS_EN = {1: "one", 2: "two", 3: "three", 4: "four"}
NUMBERS_ZH = {1: "一个", 2: "两个", 3: "三个", 4: "四个"}
IMAGE_SIZE = 128
SPLITS = ("train", "heldout", "hard")
HARD_VARIANTS = ("base", "binding", "position")  # the hard split's scenes come in this order, family by family


@dataclass(frozen=True)
class ToyObject:
    colour: str
    shape: str
    size: str
    cell: tuple[int, int]

    # -- English
    def en(self) -> str:
        return f"a {self.size} {self.colour} {self.shape} {POSITIONS[self.cell][0]}"

    def en_short(self) -> str:
        return f"{_article(self.colour)} {self.colour} {self.shape}"

    # -- Chinese
    def zh_noun(self) -> str:
        return f"{SIZES[self.size]}的{COLOURS[self.colour][0]}{SHAPES[self.shape]}"

    def zh(self) -> str:
        return f"{POSITIONS[self.cell][2]}有一个{self.zh_noun()}"

    def zh_short(self) -> str:
        return f"{COLOURS[self.colour][0]}{SHAPES[self.shape]}"

    # -- one attribute only ("a red shape", "a circle"): web captions often leave the rest unsaid
    def partial(self, keep: str, lang: str) -> str:
        if keep == "colour":
            return f"{COLOURS[self.colour][0]}的图形" if lang == "zh" else f"{_article(self.colour)} {self.colour} shape"
        return SHAPES[self.shape] if lang == "zh" else f"a {self.shape}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[ToyObject, ...]
    background: tuple[int, int, int]
    seed: int  # drives the small jitter of positions, sizes and colours when drawn

    @property
    def key(self) -> tuple:
        """What a caption can tell apart: the same key means the same description."""
        return tuple(sorted((o.colour, o.shape, o.size, o.cell) for o in self.objects))

    def to_json(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects], "background": self.background, "seed": self.seed}

    @staticmethod
    def from_json(data: dict) -> "Scene":
        objects = tuple(ToyObject(o["colour"], o["shape"], o["size"], tuple(o["cell"])) for o in data["objects"])
        return Scene(objects, tuple(data["background"]), data["seed"])

    # ------------------------------------------------------------------ captions
    def captions(self, lang: str) -> list[str]:
        """Every phrasing in ``lang`` that names all attributes of all objects."""
        if lang == "en":
            return _captions_en(self.objects)
        if lang == "zh":
            return _captions_zh(self.objects)
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")

    def short_caption(self, lang: str) -> str:
        """Colours and shapes only, the way people often query ("a red circle")."""
        if lang == "en":
            return _join_en([o.en_short() for o in self.objects])
        parts = [o.zh_short() for o in self.objects]
        return parts[0] if len(parts) == 1 else "、".join(parts[:-1]) + "和" + parts[-1]

    def partial_caption(self, rng: random.Random, lang: str = "en") -> str:
        """Each object named by its colour alone or its shape alone ("a red shape and a star")."""
        parts = [o.partial(rng.choice(("colour", "shape")), lang) for o in self.objects]
        if lang == "en":
            return _join_en(parts)
        return parts[0] if len(parts) == 1 else "、".join(parts[:-1]) + "和" + parts[-1]

    # ------------------------------------------------------------------ questions
    def questions(self) -> list[dict]:
        """Question/answer pairs (count, colour, shape, position) in both languages."""
        qa = []
        n = len(self.objects)
        qa.append(_qa("count", "en", "how many shapes are there?", NUMBERS_EN[n]))
        qa.append(_qa("count", "zh", "图中有几个图形？", NUMBERS_ZH[n]))
        shapes = [o.shape for o in self.objects]
        colours = [o.colour for o in self.objects]
        for obj in self.objects:
            if shapes.count(obj.shape) == 1:
                qa.append(_qa("colour", "en", f"what colour is the {obj.shape}?", obj.colour))
                qa.append(_qa("colour", "zh", f"{SHAPES[obj.shape]}是什么颜色？", COLOURS[obj.colour][0]))
            if colours.count(obj.colour) == 1:
                qa.append(_qa("shape", "en", f"what shape is the {obj.colour} object?", obj.shape))
                qa.append(_qa("shape", "zh", f"{COLOURS[obj.colour][0]}的物体是什么形状？", SHAPES[obj.shape]))
            if sum(o.colour == obj.colour and o.shape == obj.shape for o in self.objects) == 1:
                qa.append(_qa("position", "en", f"where is the {obj.colour} {obj.shape}?", POSITIONS[obj.cell][1]))
                qa.append(_qa("position", "zh", f"{obj.zh_short()}在哪里？", POSITIONS[obj.cell][2]))
        return qa

    # ------------------------------------------------------------------ drawing
    def render(self, size: int = IMAGE_SIZE) -> Image.Image:
        rng = random.Random(self.seed)
        image = Image.new("RGB", (size, size), self.background)
        draw = ImageDraw.Draw(image)
        cell = size / 3
        for obj in self.objects:
            radius = cell * (0.42 if obj.size == "large" else 0.26) * rng.uniform(0.9, 1.05)
            slack = cell / 2 - radius
            cx = (obj.cell[1] + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
            cy = (obj.cell[0] + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
            colour = tuple(max(0, min(255, c + rng.randint(-18, 18))) for c in COLOURS[obj.colour][1])
            _draw_shape(draw, obj.shape, cx, cy, radius, colour, rng.uniform(-0.25, 0.25))
        return image


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _qa(kind: str, lang: str, question: str, answer: str) -> dict:
    return {"type": kind, "lang": lang, "question": question, "answer": answer}


def _join_en(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _captions_en(objects) -> list[str]:
    described = _join_en([o.en() for o in objects])
    n = len(objects)
    if n == 1:
        o = objects[0]
        return [
            described,
            f"a photo of {described}",
            f"there is {described}",
            f"{POSITIONS[o.cell][0]}, a {o.size} {o.colour} {o.shape}",
        ]
    return [
        described,
        f"a photo of {described}",
        f"there are {NUMBERS_EN[n]} shapes: {described}",
        f"an image with {described}",
    ]


def _captions_zh(objects) -> list[str]:
    clauses = "，".join(o.zh() for o in objects)
    nouns = "、".join(f"{POSITIONS[o.cell][2]}的{o.zh_noun()}" for o in objects)
    n = len(objects)
    return [
        f"{clauses}。",
        f"一张图片：{clauses}。",
        f"图中有{NUMBERS_ZH[n]}图形：{nouns}。",
        f"这张图里{clauses}。",
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill, angle: float):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        return
    if shape == "square":
        points = _polygon(cx, cy, r * 1.25, 4, angle + math.pi / 4)
    elif shape == "diamond":
        points = [(cx, cy - r * 1.1), (cx + r * 0.7, cy), (cx, cy + r * 1.1), (cx - r * 0.7, cy)]
    elif shape == "triangle":
        points = _polygon(cx, cy + r * 0.15, r * 1.15, 3, angle - math.pi / 2)
    elif shape == "star":
        outer = _polygon(cx, cy, r * 1.15, 5, angle - math.pi / 2)
        inner = _polygon(cx, cy, r * 0.48, 5, angle - math.pi / 2 + math.pi / 5)
        points = [p for pair in zip(outer, inner) for p in pair]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    draw.polygon(points, fill=fill)


def _polygon(cx, cy, r, sides, start):
    return [(cx + r * math.cos(start + 2 * math.pi * k / sides), cy + r * math.sin(start + 2 * math.pi * k / sides))
            for k in range(sides)]


# ----------------------------------------------------------------------------- sampling
def allowed_combos(split: str) -> list[tuple[str, str]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    return combos if split != "train" else [cs for cs in combos if cs not in HELDOUT_COMBOS]


def random_scene(rng: random.Random, split: str = "train", n_objects: int | None = None) -> Scene:
    combos = allowed_combos(split)
    if split == "hard":
        n = n_objects or rng.choices([2, 3, 4], weights=[0.35, 0.4, 0.25])[0]
    else:
        n = n_objects or rng.choices([1, 2, 3], weights=[0.3, 0.4, 0.3])[0]
    cells = rng.sample(sorted(POSITIONS), n)
    objects = []
    for cell in sorted(cells):  # reading order: top-left to bottom-right, as a person describes
        colour, shape = rng.choice(combos)
        objects.append(ToyObject(colour, shape, rng.choice(list(SIZES)), cell))
    # light, low-saturation backgrounds so every object colour stays distinct
    base = rng.randint(205, 250)
    background = tuple(max(0, min(255, base + rng.randint(-12, 12))) for _ in range(3))
    return Scene(tuple(objects), background, rng.randrange(2**31))


def generate_scenes(n: int, seed: int, split: str = "train", unique: bool = True) -> list[Scene]:
    """``n`` scenes, reproducible from ``seed``; with ``unique`` no two share a description.

    The ``hard`` split comes in families of three (``HARD_VARIANTS``): scene ``3i`` is a base,
    ``3i+1`` its binding swap and ``3i+2`` its position swap (the last family may be cut short).
    """
    rng = random.Random(f"{split}:{seed}")
    scenes, seen = [], set()
    while len(scenes) < n:
        family = hard_family(rng) if split == "hard" else [random_scene(rng, split)]
        keys = [scene.key for scene in family]
        if unique and (seen.intersection(keys) or len(set(keys)) < len(keys)):
            continue
        seen.update(keys)
        scenes.extend(family)
    return scenes[:n]


def hard_family(rng: random.Random) -> list[Scene]:
    """A scene and its binding and position swaps: three scenes whose captions share every word."""
    while True:
        base = random_scene(rng, "hard")
        objects = list(base.objects)
        pairs = [(i, j) for i in range(len(objects)) for j in range(i + 1, len(objects))
                 if objects[i].colour != objects[j].colour and objects[i].shape != objects[j].shape]
        if not pairs:
            continue
        i, j = rng.choice(pairs)
        bound = objects[:]
        bound[i] = replace(objects[i], colour=objects[j].colour)
        bound[j] = replace(objects[j], colour=objects[i].colour)
        moved = objects[:]
        moved[i], moved[j] = replace(objects[i], cell=objects[j].cell), replace(objects[j], cell=objects[i].cell)
        moved.sort(key=lambda o: o.cell)  # captions name objects in reading order
        # the same background and drawing seed: only the swap tells the three apart
        return [base, Scene(tuple(bound), base.background, base.seed),
                Scene(tuple(moved), base.background, base.seed)]


# ----------------------------------------------------------------------------- data sets on disk
def write_dataset(out_dir: str | Path, n: int, seed: int, split: str = "heldout") -> Path:
    """Write images/, captions.jsonl, qa.jsonl and scenes.jsonl to ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    scenes = generate_scenes(n, seed, split)
    with open(out_dir / "captions.jsonl", "w", encoding="utf-8") as captions, \
            open(out_dir / "qa.jsonl", "w", encoding="utf-8") as qa, \
            open(out_dir / "scenes.jsonl", "w", encoding="utf-8") as meta:
        for i, scene in enumerate(scenes):
            name = f"images/{split}_{seed}_{i:05d}.png"
            scene.render().save(out_dir / name)
            phrasing = random.Random(scene.seed)
            for lang in ("en", "zh"):
                # two phrasings per language, picked per image so data sets vary in wording
                for caption in phrasing.sample(scene.captions(lang), 2):
                    captions.write(json.dumps({"image": name, "caption": caption, "lang": lang},
                                              ensure_ascii=False) + "\n")
            for item in scene.questions():
                qa.write(json.dumps({"image": name, **item}, ensure_ascii=False) + "\n")
            family = {"family": i // len(HARD_VARIANTS), "variant": HARD_VARIANTS[i % len(HARD_VARIANTS)]} \
                if split == "hard" else {}
            meta.write(json.dumps({"image": name, "split": split, **family, **scene.to_json()}) + "\n")
    return out_dir


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_scenes(data_dir: str | Path) -> dict[str, Scene]:
    """image path (relative to ``data_dir``) -> Scene, from scenes.jsonl."""
    return {row["image"]: Scene.from_json(row) for row in read_jsonl(Path(data_dir) / "scenes.jsonl")}

"""Capstone: bilingual image-library search and captioning, a guided tour.

Builds a small library, indexes it, searches it in English, in Chinese (every
strategy side by side) and by example image, captions an image in both
languages and measures retrieval recall. Every step is one command of
``python -m chapter09.capstone``, shown as you would type it.
"""
# %%
import shutil
import sys
from pathlib import Path

from PIL import Image

from chapter09 import lesson as lessons
from chapter09.capstone.encoders import clip_encoder
from chapter09.capstone.evaluate import evaluate_retrieval, format_retrieval, load_dataset
from chapter09.capstone.library import build_index
from chapter09.capstone.search import LibrarySearch
from chapter09.toyworld import load_scenes, write_dataset

lesson = lessons.start("capstone", "Bilingual image-library search and captioning")
models = lesson.models

# %% [markdown]
# ## 1. A library and its index
lesson.say("""We start from a folder of images. In the toy world we generate 400 scenes (captions kept
aside for measuring); with real models, point `index` at your own photos.""")
library = lesson.out / "library"
if library.exists():
    shutil.rmtree(library)
write_dataset(library, n=400, seed=2024, split="heldout")
index_dir = lesson.out / "index"
print(f"$ python -m chapter09.capstone index {library} --index {index_dir}")
summary = build_index(library, index_dir, {"clip": clip_encoder("clip", models, lesson.device, lesson.dtype)})
print(summary.text())
lesson.say("""Run it again: nothing is re-encoded. Only new or changed files are, deleted ones are dropped,
and a run killed half-way resumes from its last checkpoint.""")
again = build_index(library, index_dir, {"clip": clip_encoder("clip", models, lesson.device, lesson.dtype)},
                    progress=False)
print(f"second run: added {again.added}, unchanged {again.unchanged}")

# %% [markdown]
# ## 2. Search by text, in English and in Chinese
searcher = LibrarySearch(index_dir, models, lesson.device, lesson.dtype)
scenes = load_scenes(library)
target_name, target = sorted(scenes.items())[7]


def show(result, title):
    print(f"\n{title}  [{result['strategy']}, {result['search']} search, {result['ms']} ms]")
    for hit in result["hits"][:3]:
        mark = "  <- the image described" if hit["path"] == target_name else ""
        print(f"  {hit['rank']}. {hit['score']:.3f} {hit['path']}{mark}")


query_en = target.captions("en")[0]
query_zh = target.captions("zh")[0]
print(f'$ python -m chapter09.capstone search --index {index_dir} --text "{query_en}"')
show(searcher.by_text(query_en, 5), f'"{query_en}"')
lesson.say("""Chinese queries can take three routes: translate to English first (opus-mt), a multilingual
text encoder distilled into CLIP's image space, or Chinese-CLIP with its own image vectors. In the toy
world CLIP itself was trained on both languages, so plain CLIP is a fourth route. Compare them:""")
comparison = {}
for strategy in ("clip", "translate", "multilingual"):
    try:
        result = searcher.by_text(query_zh, 5, strategy)
        show(result, f'"{query_zh}" via {strategy}')
        comparison[strategy] = [h["path"] for h in result["hits"]].index(target_name) + 1 \
            if target_name in [h["path"] for h in result["hits"]] else None
    except Exception as error:  # a model this machine lacks is reported, and the tour goes on
        print(f"\n{strategy}: unavailable here ({type(error).__name__}: {str(error)[:160]})")
        comparison[strategy] = "unavailable"
lesson.record(chinese_query_rank_by_strategy=comparison)

# %% [markdown]
# ## 3. Search by example image
copy = lesson.out / "query_copy.jpg"
Image.open(library / target_name).resize((96, 96)).save(copy, quality=60)
print(f"\n$ python -m chapter09.capstone search --index {index_dir} --image {copy}")
show(searcher.by_image(str(copy), 5), "a resized JPEG copy of the target")

# %% [markdown]
# ## 4. Captions in both languages
try:
    from chapter09.captioning import Captioner

    captioner = Captioner(models=models, device=lesson.device, dtype=lesson.dtype)
    image = Image.open(library / target_name).convert("RGB")
    print(f"\n$ python -m chapter09.capstone caption {library / target_name}")
    print(f"  [en] {captioner.caption([image], lang='en')[0]}\n  [zh] {captioner.caption([image], lang='zh')[0]}")
    print(f"  reference: {query_en} / {query_zh}")
except Exception as error:
    print(f"\ncaptioning unavailable here ({type(error).__name__}: {str(error)[:160]})")

# %% [markdown]
# ## 5. How good is retrieval? Recall@K in both directions
print(f"\n$ python -m chapter09.capstone eval --dataset {library}")
report = evaluate_retrieval(load_dataset(library), "auto", models, lesson.device, lesson.dtype)
print(format_retrieval(report))
lesson.record(recall={lang: r["text_to_image"] for lang, r in report["languages"].items()})
lesson.say(f"""Next: `python -m chapter09.capstone serve --index {index_dir}` opens the web UI on
http://127.0.0.1:7860 (text search, image search, captions, match scores, model info).""")
lesson.finish()

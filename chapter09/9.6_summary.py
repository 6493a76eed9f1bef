"""9.6 Summary: every model of the chapter measured on this machine, and the learning path."""
# %% [markdown]
# # 9.6 Summary
# Every model this chapter used is loaded and run here, on this machine, in this run:
# its parameters, the memory its weights take, and the milliseconds it needs per image
# (per sentence for text models, per question for VQA). A model whose weights are not
# available is listed as *not measured*, never filled in from a model card. Run this
# section on your own machine before choosing a model: the table is its price list.

# %%
import contextlib
import gc
import io

import torch

from chapter09 import config, cpu, measure
from chapter09.lesson import start, why_unavailable
from chapter09.models import ModelUnavailableError, pick_dtype, resolve
from chapter09.toyworld import generate_scenes

lesson = start("9.6", "Summary")
torch.set_num_threads(1)  # one thread: steadier timings on a shared CPU
print(f"  CPU: {cpu.describe()}")
print(f"  native bf16: {cpu.has_native_bf16()}, so the chapter's CPU dtype here is "
      f"{str(pick_dtype('cpu')).replace('torch.', '')} (models that other libraries load may stay float32)")
scenes = generate_scenes(8, config.TOY_HELDOUT_SEED, "heldout")
images = [scene.render() for scene in scenes]
sentences = [scene.captions("en")[0] for scene in scenes]
sentences_zh = [scene.captions("zh")[0] for scene in scenes]

# %% [markdown]
# ## 1. How each model is run
# One small loader per model: it returns the model (to count parameters and weight
# bytes) and a function that does the model's job on a batch of 8 inputs.

# %%
def load_clip(role):
    def load():
        from chapter09.clip import ClipEncoder

        encoder = ClipEncoder(role, lesson.settings)
        return encoder.resolved, encoder.model, encoder.encode_images
    return load


def load_sbert(role, inputs):
    def load():
        from sentence_transformers import SentenceTransformer

        from chapter09.models import announce, pick_device

        resolved = resolve(role, lesson.settings)
        announce(resolved)
        model = SentenceTransformer(resolved.location, device=pick_device(lesson.settings.device))
        return resolved, model, lambda batch: model.encode(inputs(batch), batch_size=len(batch))
    return load


def load_captioner():
    from chapter09.captioning import Captioner

    captioner = Captioner(lesson.settings)
    return captioner.resolved, captioner.model, lambda batch: captioner.caption(batch, "en")


def load_vqa():
    from chapter09.vqa import BlipAnswerer

    answerer = BlipAnswerer(lesson.settings)
    return answerer.resolved, answerer.model, lambda batch: answerer.answer_batch(
        batch, ["how many shapes are there?"] * len(batch))


def load_blip2():
    from chapter09 import vqa

    route = vqa.choose_route(lesson.settings, prefer="auto")
    if route.name != "blip2":
        raise ModelUnavailableError(f"the BLIP-VQA route was chosen: {why_unavailable(route.reason)}")
    answerer = vqa.Blip2Answerer(route.resolved, lesson.settings)
    return route.resolved, answerer.model, lambda batch: [answerer.answer(i, "how many shapes are there?") for i in batch]


def load_translator(direction, inputs):
    def load():
        from chapter09.translation import Translator

        translator = Translator(direction, lesson.settings)
        return translator.resolved, translator.model, lambda batch: translator.translate(inputs[:len(batch)])
    return load


def load_small_vlm():
    from chapter09.vlm.smolvlm import SmallVLM

    vlm = SmallVLM(lesson.settings)
    return vlm.resolved, vlm.model, lambda batch: vlm.ask(batch, "Describe the image briefly.", max_new_tokens=20)


def load_tiny_vlm():
    from chapter09.models import ResolvedModel
    from chapter09.vlm import tiny as tiny_vlm

    folder = config.TOY_MODELS_DIR / "tiny_vlm"
    model = tiny_vlm.load(folder)
    return ResolvedModel("tiny_vlm", config.model_spec("vlm_language_model"), str(folder), "toy"), model, model.generate


CHAPTER_MODELS = [  # name, loader, unit of work, what it is for, where it is used
    ("CLIP", load_clip("clip"), "image", "image and text embeddings in one space", "9.1, 9.2, capstone"),
    ("sentence-transformers CLIP", load_sbert("sbert_clip", lambda batch: batch), "image",
     "the same CLIP behind encode()", "9.3"),
    ("multilingual text encoder", load_sbert("multilingual_text", lambda batch: sentences_zh[:len(batch)]),
     "sentence", "Chinese (50+ languages) queries into CLIP's space", "9.3, capstone"),
    ("Chinese-CLIP", load_clip("chinese_clip"), "image", "CLIP trained on Chinese pairs", "capstone"),
    ("BLIP captioner", load_captioner, "image", "captions on CPU (en; zh via translation)", "9.4, capstone"),
    ("BLIP-VQA", load_vqa, "question", "visual Q&A on CPU", "9.4"),
    ("BLIP-2 OPT-2.7b", load_blip2, "question", "captions and Q&A with chat memory", "9.4"),
    ("MarianMT en-zh", load_translator("en_zh", sentences), "sentence", "English captions to Chinese", "9.4, capstone"),
    ("MarianMT zh-en", load_translator("zh_en", sentences_zh), "sentence", "Chinese queries to English", "capstone"),
    ("SmolVLM-256M-Instruct", load_small_vlm, "image", "instructions about images on CPU", "9.5"),
    ("tiny VLM (toy)", load_tiny_vlm, "image", "the VLM you build and train", "9.5"),
]

# %% [markdown]
# ## 2. Measure what is here
# Latency is the median of 3 timed runs over a batch of 8 inputs on one thread, after
# one warm-up run, divided by 8. Memory is the bytes of the weights as loaded (in the
# dtype shown), not the whole process. Each model gets one line saying which weights ran;
# in the toy world every one is a toy twin, and its milliseconds say nothing about the
# real checkpoint's speed.

# %%
rows = []
for name, load, unit, purpose, used_in in CHAPTER_MODELS:
    loading = io.StringIO()
    try:
        with contextlib.redirect_stdout(loading):  # one line per model below, instead of each loader's banner
            resolved, model, run = load()
    except (ModelUnavailableError, FileNotFoundError, OSError) as error:
        reason = why_unavailable(error)
        print(f"  {name}: not measured ({reason})")
        rows.append({"model": name, "weights": "not available here", "used_in": used_in, "purpose": purpose,
                     "reason": reason})
        continue
    try:
        ms_per_item = round(1000 * measure.latency_per_item(run, images, repeats=3), 2)
    except Exception as error:  # a broken checkpoint gets a row that says so; the others are still measured
        print(f"  {name}: FAILED while running: {type(error).__name__}: {error}")
        rows.append({"model": name, "weights": "failed to run", "used_in": used_in, "purpose": purpose,
                     "reason": f"{type(error).__name__}: {error}"})
        continue
    rows.append({
        "model": name,
        "weights": "toy twin" if resolved.is_toy else resolved.spec.hub_id,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "parameters_m": round(measure.count_parameters(model) / 1e6, 2),
        "memory_mb": round(measure.weight_bytes(model) / 2**20, 1),
        "ms_per_item": ms_per_item,
        "per": unit,
        "used_in": used_in,
        "purpose": purpose,
    })
    which = "toy twin" if resolved.is_toy else f"{resolved.spec.hub_id} ({resolved.source})"
    print(f"  {name}: {ms_per_item} ms per {unit}  [{which}]")
    del model, run
    gc.collect()

columns = ["model", "weights", "dtype", "parameters_m", "memory_mb", "ms_per_item", "per", "used_in", "purpose"]
table = measure.format_table(rows, columns)
print(table)
(lesson.out / "models_table.md").write_text(table + "\n", encoding="utf-8")
measured = [row for row in rows if "ms_per_item" in row]
lesson.record(models=rows, measured=len(measured), threads=torch.get_num_threads(), batch=len(images))

# %%
if measured:
    toy = all(row["weights"] == "toy twin" for row in measured)
    title = (f"{'toy twins: ' if toy else ''}milliseconds per item on {cpu.cpu_name()} "
             f"({'native' if cpu.has_native_bf16() else 'no native'} bf16; 1 thread, batch of 8)")
    lesson.save_figure(measure.bar_plot(measured, "model", "ms_per_item", title, log=True), "models_latency.png")

# %% [markdown]
# ## 3. The learning path, in one breath
# * **9.1** CLIP maps an image and a sentence to two unit vectors; their dot product
#   says how well they match.
# * **9.2** A whole similarity matrix is one matrix product: retrieval in both
#   directions, scored by recall@k.
# * **9.3** sentence-transformers wraps CLIP in `encode()`, and a multilingual text
#   encoder lets Chinese queries search the same image vectors.
# * **9.4** BLIP writes captions and answers questions; BLIP-2 puts an image into a
#   frozen LLM through 32 query tokens and can chat with memory, if memory allows
#   (3.74 B parameters); the CPU route is BLIP base.
# * **9.5** A VLM is a vision encoder, a projector and an LM; you built and trained one,
#   and measured what bf16, int8 and ONNX Runtime change.
# * **Capstone**: bilingual captions and text/image search over a photo library, behind a
#   web page.
#
# This table is the *price* of each model; its quality was measured where the model was
# taught: recall in 9.2 and 9.3, caption and VQA accuracy in 9.4, the tiny VLM's caption
# score and its precisions in 9.5 (in the toy world, on held-out scenes). Choose the
# smallest model whose quality, measured on data like yours, is enough for the task, then
# check its row above on the machine that will run it. Exercise 9.6.2 turns that rule into
# a function.

# %%
lesson.finish()

# %% [markdown]
# ## Summary
# * Every model in the chapter is served by one registry (`chapter09/config.py`): a role, its real
#   hub id, and a toy twin of the same class for offline runs.
# * Pick a model by measuring it where it will run: latency per item, memory, and quality on
#   held-out data, side by side in one run.
# * CLIP scores text against images; BLIP and BLIP-2 write text about them; a VLM reads images as
#   tokens; the capstone joins them into a bilingual search and captioning engine.
# * A figure that saturates (every method at 1.0) cannot compare methods: a harder held-out split
#   can, as the hard split's binding and position swaps show.

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.6`, fill in `my_exercises/ex9_6.py`, then
# `python -m chapter09.exercises check 9.6`.
#
# 1. **Predict, then run.** Run this section with `torch.set_num_threads(2)`. Which rows
#    change most, and why do the smallest models gain least?
# 2. **9.6.1 `latency_per_item`** (checked, with a fake clock): warm-up, repeats, the median.
# 3. **9.6.2 `choose_model`** (checked): the fastest model that is good enough and fits.
# 4. **Explore.** Run `CH09_HIDE_CPU_FEATURES=bf16 python run_all_sections.py 6` and compare
#    the dtype column and the first line with this run.
#
# ## Self-check
# **1. Why the median of several runs, after a warm-up?**
# <details><summary>Answer</summary>
# The first call pays for lazy initialisation and cold caches; on a shared machine one run
# can be slowed by another program. The median ignores one outlier; the mean does not.
# </details>
#
# **2. Are these milliseconds the real models' speed?**
# <details><summary>Answer</summary>
# Not in the toy world: each row says which weights ran, and toy twins are a few MB. Run
# the section with `--models real` on your machine to price the real checkpoints.
# </details>
#
# ## Further reading
# * The papers of each section's further reading, and the glossary in `chapter09/README.md`.
# * Dettmers et al., *LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale*
#   (arXiv 2208.07339): why int8 needs care (outlier features) once models are large, the
#   step after 9.5's dynamic int8.
# * PyTorch's *torchao* documentation: the current home of PyTorch's int8 and lower precisions.

"""9.5 Lightweight VLM: run SmolVLM, build and train your own, and measure the trade-offs."""
# %% [markdown]
# # 9.5 Lightweight VLMs
# A modern vision-language model is three parts: a vision encoder, a *projector* that
# turns image features into "visual words", and a causal language model that reads
# them before the text. `HuggingFaceTB/SmolVLM-256M-Instruct` is such a model, small
# enough for a CPU. This lesson first asks it to describe an image and answer a
# question (when its weights are here), then builds and trains our own VLM from CLIP's
# vision tower and a Qwen3 language model (`chapter09/vlm/tiny.py`), and finally
# measures what fp32, bf16, dynamic int8 and ONNX Runtime cost and buy on this machine.

# %%
import inspect
import json

import matplotlib.pyplot as plt
import torch

from chapter09 import config, cpu, measure
from chapter09.captioning import names_every_object
from chapter09.images import load_image
from chapter09.lesson import precision_verdict, start, why_unavailable
from chapter09.models import ModelUnavailableError, resolve
from chapter09.toyworld import generate_scenes
from chapter09.vlm import tiny as tiny_vlm

lesson = start("9.5", "Lightweight VLM")
scenes = generate_scenes(120, config.TOY_HELDOUT_SEED, "heldout")  # held out: never seen in training
images = [scene.render() for scene in scenes]

# %% [markdown]
# ## 1. SmolVLM-256M-Instruct
# It follows instructions in chat form: the processor's chat template puts an image
# placeholder and the instruction into one prompt, and the processor expands the
# placeholder into the image's tokens. The same model captions ("describe the image")
# and answers questions. There is no toy twin of it, so without its real weights
# this step says how to get them and moves on.

# %%
try:
    from chapter09.vlm.smolvlm import SmallVLM

    smol = SmallVLM(lesson.settings)
    photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))[:2]
    photo_images = [load_image(config.ASSETS_DIR / photo["image"]) for photo in photos]
    print("  the prompt the chat template builds:", repr(smol.prompt("Describe the image in one sentence.")))
    replies = {"caption": smol.ask(photo_images, "Describe the image in one sentence."),
               "answer": smol.ask(photo_images, "What is the main object in this image? Answer in a few words.")}
    for i, photo in enumerate(photos):
        print(f"  {photo['image']}\n    caption: {replies['caption'][i]}\n    answer:  {replies['answer'][i]}")
    lesson.record(smolvlm=replies)
except ModelUnavailableError as error:
    reason = why_unavailable(error)
    lesson.say(f"""SmolVLM skipped: {reason}. With the hub: `hf download {config.model_spec('small_vlm').hub_id}`,
        then --models real.""")
    lesson.record(smolvlm=f"skipped: {reason}")

# %% [markdown]
# ## 2. Build your own: vision encoder + projector + language model
# `tiny_vlm.build()` joins CLIP's vision tower, a two-layer MLP projector and a causal
# LM. With real weights that is CLIP ViT-B/32 + `Qwen/Qwen3-0.6B`; in the toy world,
# the toy CLIP + a tiny Qwen3 of the same design (2 layers, width 128). The image's
# patch embeddings go through the projector and sit in front of the caption's tokens;
# training is next-token prediction on the caption only.
#
# What learns is a choice: `freeze(vision=True, train_last_lm_layers=N)` keeps the
# vision tower and all but the last N LM layers fixed. Fewer trainable weights means
# less memory for gradients and optimizer state, and less forgetting.

# %%
torch.manual_seed(0)  # the same fresh weights on every run, so the demo's losses below repeat
demo = tiny_vlm.build(lm="toy", settings=lesson.settings)
parts = {name: measure.count_parameters(getattr(demo, name)) for name in ("vision", "projector", "lm")}
print("  parameters: " + ", ".join(f"{name} {count / 1e6:.2f} M" for name, count in parts.items()))
for vision, last_layers in ((True, 1), (True, -1), (False, -1)):
    demo.freeze(vision=vision, train_last_lm_layers=last_layers)
    print(f"  freeze(vision={vision!s:<5}, train_last_lm_layers={last_layers:>2}): "
          f"{demo.trainable_parameters() / 1e6:.2f} M trainable")
lesson.record(tiny_vlm_parameters=parts)

# %% [markdown]
# The whole trick of a VLM is in its `forward`: the projected image features become the
# first positions of the sequence, the caption's word embeddings follow, the attention
# mask covers both, and the labels put -100 (ignored by the cross-entropy) on every image
# position, so the model is trained to predict the caption's words only, given the image.
# This is the library's code, printed from `chapter09/vlm/tiny.py`:

# %%
print(inspect.getsource(tiny_vlm.TinyVLM.forward))

# %% [markdown]
# A short live run: 60 steps on 256 toy captions with the vision tower frozen (its
# features are computed once, not every step). The loss falls fast, but 60 steps are
# far too few for good captions.

# %%
demo.freeze(vision=True, train_last_lm_layers=-1)
captions_json = tiny_vlm.write_toy_captions(lesson.out / "demo_data", 256, 5, "train")
history = tiny_vlm.train(demo, *tiny_vlm.read_captions(captions_json), steps=60, batch_size=32, log_every=20)
first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
print(f"  loss: {first:.2f} over the first 5 steps -> {last:.2f} over the last 5")
lesson.record(demo_loss_first=round(first, 3), demo_loss_last=round(last, 3), demo_loss=[round(x, 4) for x in history])

figure, axis = plt.subplots(figsize=(7, 3.2))
axis.plot(range(1, len(history) + 1), history, color="tab:blue")
axis.set_xlabel("training step (batch of 32 captions)")
axis.set_ylabel("cross-entropy per caption token")
axis.set_title("9.5 training loss of the fresh VLM, first 60 steps"
               + (" (toy world)" if resolve("clip", lesson.settings).is_toy else ""))
axis.grid(alpha=0.3)
lesson.save_figure(figure, "demo_loss.png")
demo.eval()
for scene, caption in zip(scenes[:2], demo.generate(images[:2])):
    print(f"  after 60 steps -> {caption!r}\n  truth          -> {scene.captions('en')[0]!r}")

# %% [markdown]
# ## 3. The committed tiny VLM on held-out scenes
# `chapter09/toyworld/twins/tiny_vlm` was trained the same way for longer:
# `python -m chapter09.vlm train DATA/captions.json --out chapter09/toyworld/twins/tiny_vlm`.
# A caption counts as right when it names every object's colour and shape. Held-out
# scenes include colour-shape pairs never seen in training ("a red star").

# %%
model = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")


def caption_accuracy(vlm) -> float:
    captions = vlm.generate(images)
    return sum(names_every_object(c, s, "en") for c, s in zip(captions, scenes)) / len(scenes)


all_captions = model.generate(images)  # once: the examples, the score and the error count below all read these
for scene, caption in zip(scenes, all_captions[:3]):
    verdict = "right" if names_every_object(caption, scene, "en") else "WRONG: an object's colour or shape is off"
    print(f"  truth: {scene.captions('en')[0]}\n  model: {caption}   [{verdict}]")
accuracy = sum(names_every_object(c, s, "en") for c, s in zip(all_captions, scenes)) / len(scenes)
print(f"  captions naming every object's colour and shape: {accuracy:.3f} of {len(scenes)} held-out images")
lesson.record(tiny_vlm_accuracy=round(accuracy, 3))

# %% [markdown]
# What goes wrong when a caption is wrong? Comparing the colours and the shapes a wrong
# caption names with the scene's, over all 120 scenes: the tiny VLM reads the toy CLIP's
# frozen vision tower, which tells shapes apart least well on the colour-shape pairs held
# out of training (chapter09/README.md, "Known gaps").

# %%
from collections import Counter

from chapter09.captioning import named_objects

kinds = Counter()
for scene, caption in zip(scenes, all_captions):
    if names_every_object(caption, scene, "en"):
        continue
    said, truth = named_objects(caption, "en"), [(o.colour, o.shape) for o in scene.objects]
    kinds["wrong number of objects"] += len(said) != len(truth)
    kinds["a colour wrong"] += Counter(c for c, _ in said) != Counter(c for c, _ in truth)
    kinds["a shape wrong"] += Counter(s for _, s in said) != Counter(s for _, s in truth)
print(f"  {sum(not names_every_object(c, s, 'en') for c, s in zip(all_captions, scenes))} wrong captions of "
      f"{len(scenes)}; what they get wrong (one caption can count in several rows):")
for kind, count in kinds.most_common():
    print(f"    {kind:<24} {count}")
lesson.record(tiny_vlm_errors=dict(kinds))

# %% [markdown]
# ## 4. fp32 vs bf16 vs dynamic int8 vs ONNX Runtime, measured here
# * **bf16** halves every weight. It is faster only on CPUs with native bf16 units
#   (AVX-512 BF16 or AMX) and for large matrices; on a CPU with only AVX2 it is emulated
#   and *slower* than fp32. The first line below says which kind of CPU this run had.
# * **dynamic int8** (`torch.ao.quantization.quantize_dynamic`) stores Linear weights as
#   8-bit integers and quantises activations on the fly; embeddings and norms stay float.
#   It is a CPU technique (its kernels are FBGEMM/oneDNN on x86, QNNPACK on ARM), and it
#   is fastest where the CPU has int8 dot products (VNNI, AMX). PyTorch has deprecated
#   `torch.ao.quantization` in favour of **torchao** (`torchao.quantization.quantize_`),
#   which is where new work on int8 and lower precisions happens; `measure.py` still uses
#   the old call (and silences its deprecation warning) because it needs no extra package.
# * **ONNX Runtime** runs the same fp32 weights as a graph, without Python between layers.
#   `generate` cannot be exported whole, so `chapter09/vlm/onnx.py` exports the image encoder
#   and one LM step and runs the greedy loop in NumPy.
#
# Latency is the median of 3 runs over 16 images on one thread, after a warm-up; memory is
# the weights in memory (for ONNX, the size of the exported files); quality is the held-out
# caption score above. A tiny model like this one is bound by Python
# overhead, not arithmetic, so expect small speed differences; on a shared machine the
# timings also vary from run to run.

# %%
torch.set_num_threads(1)  # one thread: steadier timings on a shared CPU
print(f"  CPU: {cpu.describe()}")
print(f"  native bf16: {cpu.has_native_bf16()}; int8 dot products (VNNI/AMX): {cpu.has_int8_dot()}")
sample = images[:16]
rows = measure.compare_precisions(model, lambda variant, xs: variant.generate(xs), sample, caption_accuracy)
onnx_model = None
try:
    from chapter09.vlm import onnx as onnx_vlm

    onnx_model = onnx_vlm.export(model, lesson.out / "onnx")
    rows.append(measure.variant_row("onnxruntime-fp32", onnx_model.generate, sample,
                                    measure.count_parameters(model), onnx_model.file_bytes(),
                                    lambda: caption_accuracy(onnx_model)))
except Exception as error:  # record why, rather than leave the row out silently
    print(f"  ONNX Runtime row not measured: {type(error).__name__}: {error}")
    rows.append({"variant": "onnxruntime-fp32", "note": f"not measured: {type(error).__name__}: {error}"[:200]})
table = measure.format_table(rows)
print(table)
(lesson.out / "precision_table.md").write_text(table + "\n", encoding="utf-8")
lesson.record(precision_rows=rows, threads=torch.get_num_threads(), latency_batch=len(sample))
bf16_kind = "native bf16" if cpu.has_native_bf16() else "no native bf16"
lesson.save_figure(measure.tradeoff_plot(rows, f"tiny VLM{' (toy world)' if resolve('clip', lesson.settings).is_toy else ''}"
                                               f" on {cpu.cpu_name()} ({bf16_kind}): latency, weight memory, "
                                               "held-out quality"),
                   "precision_latency.png")
fp32 = rows[0]
for row in rows[1:]:
    if "ms_per_item" in row:
        print(f"  {row['variant']:<17} {row['ms_per_item'] / fp32['ms_per_item']:.2f}x the fp32 time, "
              f"{row['weights_mb'] / fp32['weights_mb']:.2f}x the memory, quality {row['quality']} vs {fp32['quality']}")
verdict = precision_verdict(rows, cpu.has_native_bf16())
for line in verdict:
    print(f"  {line}")
lesson.record(cpu=cpu.features(), precision_verdict=verdict)

# %% [markdown]
# Whole captions mix two kinds of work: one image-encoder pass, then a Python loop of LM
# steps. The exported LM step has no key/value cache, so each ONNX step re-reads the whole
# sequence, while `generate` in torch reuses the cache. The image encoder alone is one
# graph call on both sides, a like-for-like comparison:

# %%
if onnx_model is not None:
    pixels = model.image_processor(images=sample, return_tensors="pt")["pixel_values"]
    encoder = torch.nn.ModuleList([model.vision, model.projector])
    encoder_rows = [
        measure.variant_row("torch-fp32 image encoder", lambda xs: model.visual_tokens(model.image_features(xs)),
                            pixels, measure.count_parameters(encoder), measure.weight_bytes(encoder)),
        measure.variant_row("onnxruntime image encoder",
                            lambda xs: onnx_model.encoder.run(None, {"pixel_values": xs.numpy()}), pixels,
                            measure.count_parameters(encoder), (lesson.out / "onnx" / onnx_vlm.ENCODER_FILE).stat().st_size),
    ]
    print(measure.format_table(encoder_rows))
    lesson.record(encoder_rows=encoder_rows)

# %%
lesson.finish()

# %% [markdown]
# ## Summary
# * A VLM is a vision encoder, a projector that turns its patch features into "visual words"
#   in the language model's embedding space, and a causal language model that reads them
#   before the text.
# * 9.5's tiny VLM feeds every patch (plus CLS) through the projector: the language model reads
#   one visual token per patch. BLIP-2's Q-Former (9.4) compresses any image to a fixed 32.
# * Training only the projector (and optionally the last LM layers) on captions is enough to
#   get a small VLM talking about images; the frozen vision tower is run once per image.
# * Precision is a trade, measured on the machine that runs it: bf16 is fast only with native
#   bf16 units, dynamic int8 shrinks the Linear weights, ONNX Runtime removes framework overhead;
#   each must be checked against fp32's outputs, not assumed.

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.5`, fill in `my_exercises/ex9_5.py`, then
# `python -m chapter09.exercises check 9.5`.
#
# 1. **Predict, then run.** Train the demo with `train_last_lm_layers=1` instead of -1. Will
#    the loss after 60 steps be higher or lower? Why?
# 2. **9.5.1 `build_vlm_inputs`** (checked, against what `TinyVLM.forward` hands its LM): the
#    sequence and the label mask.
# 3. **9.5.2 `caption_labels`** (checked): labels for padded captions.
# 4. **9.5.3 `quantize_int8`** (checked): per-row symmetric int8, the weight half of dynamic int8.
# 5. **Measure.** Time a matrix product of a size of your choice (say 2048 x 2048) in fp32, bf16
#    and through `torch.ao.quantization.quantize_dynamic` on a `torch.nn.Linear`, on your CPU.
#    Print `chapter09.cpu.describe()` beside it. At what size does int8 start to win?
#
# ## Self-check
# **1. Why are the image positions' labels -100?**
# <details><summary>Answer</summary>
# -100 is the index PyTorch's cross-entropy ignores. The image is context; the model is not
# asked to predict visual tokens, only the caption's words after them.
# </details>
#
# **2. bf16 halves the memory. Is it always faster?**
# <details><summary>Answer</summary>
# No. Only with bf16 arithmetic in hardware (AVX-512 BF16, AMX, or a GPU); on an AVX2-only
# CPU it is converted back and forth and runs slower than fp32. And a model as small as the
# tiny VLM spends much of its time outside the matrix products, in Python and small ops.
# </details>
#
# **3. Why is the ONNX Runtime caption slower although its image encoder is faster?**
# <details><summary>Answer</summary>
# The exported LM step has no key/value cache: each new token re-reads the whole sequence,
# while torch's `generate` reuses the cache. The encoder alone is one graph call on both sides.
# </details>
#
# ## Further reading
# * Liu et al., *Visual Instruction Tuning* (LLaVA, arXiv 2304.08485): vision encoder +
#   projector + LLM, the design this section builds, and its two training stages.
# * Marafioti et al., *SmolVLM: Redefining small and efficient multimodal models*
#   (arXiv 2504.05299): how far a 256 M VLM goes, and the image-token budget.
# * Jacob et al., *Quantization and Training of Neural Networks for Efficient
#   Integer-Arithmetic-Only Inference* (arXiv 1712.05877): the int8 scheme behind dynamic
#   quantisation.
# * Yang et al., *Qwen3 Technical Report* (arXiv 2505.09388): the language model family used here.

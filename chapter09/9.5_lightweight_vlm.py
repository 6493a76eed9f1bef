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

# %% [markdown] lang="zh"
# # 9.5 轻量级视觉语言模型
# 现代的视觉语言模型（VLM）由三部分组成：视觉编码器；*投影层*（projector），把图像特征变成"视觉词"；因果语言模型，先读这些视觉词再读文本。`HuggingFaceTB/SmolVLM-256M-Instruct` 就是这样一个模型，小到 CPU 也跑得动。本节先请它描述一张图、回答一个问题（前提是本机有它的权重），然后用 CLIP 的视觉塔和一个 Qwen3 语言模型搭建并训练我们自己的 VLM（`chapter09/vlm/tiny.py`），最后在本机实测 fp32、bf16、动态 int8 和 ONNX Runtime 各自的代价与收益。

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

lesson = start("9.5", "Lightweight VLM", zh="轻量级视觉语言模型")
scenes = generate_scenes(120, config.TOY_HELDOUT_SEED, "heldout")  # held out: never seen in training
images = [scene.render() for scene in scenes]

# %% [markdown]
# ## 1. SmolVLM-256M-Instruct
# It follows instructions in chat form: the processor's chat template puts an image
# placeholder and the instruction into one prompt, and the processor expands the
# placeholder into the image's tokens. The same model captions ("describe the image")
# and answers questions. There is no toy twin of it, so without its real weights
# this step says how to get them and moves on.

# %% [markdown] lang="zh"
# ## 1. SmolVLM-256M-Instruct
# 它按对话形式接受指令：processor 的对话模板把一个图像占位符和指令拼成一个提示词，再由 processor 把占位符展开成图像的词元。同一个模型既能写描述（"describe the image"），也能回答问题。它没有玩具孪生模型，所以没有真实权重时，这一步会说明如何获取，然后继续往下走。

# %%
try:
    from chapter09.vlm.smolvlm import SmallVLM

    smol = SmallVLM(lesson.settings)
    photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))[:2]
    photo_images = [load_image(config.ASSETS_DIR / photo["image"]) for photo in photos]
    print(lesson.t("  the prompt the chat template builds:", "  对话模板拼出的提示词："),
          repr(smol.prompt("Describe the image in one sentence.")))
    replies = {"caption": smol.ask(photo_images, "Describe the image in one sentence."),
               "answer": smol.ask(photo_images, "What is the main object in this image? Answer in a few words.")}
    for i, photo in enumerate(photos):
        print(f"  {photo['image']}\n    {lesson.t('caption: ', '描述：')}{replies['caption'][i]}"
              f"\n    {lesson.t('answer:  ', '回答：')}{replies['answer'][i]}")
    lesson.record(smolvlm=replies)
except ModelUnavailableError as error:
    reason = why_unavailable(error)
    lesson.say(f"""SmolVLM skipped: {reason}. With the hub: `hf download {config.model_spec('small_vlm').hub_id}`,
        then --models real.""",
               zh=f"""跳过 SmolVLM：{reason}。能连上 hub 时，先运行 `hf download {config.model_spec('small_vlm').hub_id}`，
        再加 --models real。""")
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

# %% [markdown] lang="zh"
# ## 2. 自己搭一个：视觉编码器 + 投影层 + 语言模型
# `tiny_vlm.build()` 把 CLIP 的视觉塔、一个两层 MLP 投影层和一个因果语言模型连在一起。用真实权重时是 CLIP ViT-B/32 + `Qwen/Qwen3-0.6B`；在玩具世界里是玩具 CLIP + 同样设计的迷你 Qwen3（2 层，宽度 128）。图像的图块嵌入经过投影层，排在描述的词元前面；训练目标是只对描述部分做下一个词元预测。
#
# 训练哪些部分可以自己选：`freeze(vision=True, train_last_lm_layers=N)` 冻结视觉塔，以及语言模型除最后 N 层以外的所有层。可训练的权重越少，梯度和优化器状态占的内存越少，模型也越不容易遗忘原有能力。

# %%
torch.manual_seed(0)  # the same fresh weights on every run, so the demo's losses below repeat
demo = tiny_vlm.build(lm="toy", settings=lesson.settings)
parts = {name: measure.count_parameters(getattr(demo, name)) for name in ("vision", "projector", "lm")}
print(lesson.t("  parameters: ", "  参数量：") + ", ".join(f"{name} {count / 1e6:.2f} M" for name, count in parts.items()))
for vision, last_layers in ((True, 1), (True, -1), (False, -1)):
    demo.freeze(vision=vision, train_last_lm_layers=last_layers)
    print(f"  freeze(vision={vision!s:<5}, train_last_lm_layers={last_layers:>2}): "
          f"{demo.trainable_parameters() / 1e6:.2f} M " + lesson.t("trainable", "可训练"))
lesson.record(tiny_vlm_parameters=parts)

# %% [markdown]
# The whole trick of a VLM is in its `forward`: the projected image features become the
# first positions of the sequence, the caption's word embeddings follow, the attention
# mask covers both, and the labels put -100 (ignored by the cross-entropy) on every image
# position, so the model is trained to predict the caption's words only, given the image.
# This is the library's code, printed from `chapter09/vlm/tiny.py`:

# %% [markdown] lang="zh"
# VLM 的全部奥妙都在它的 `forward` 里：投影后的图像特征占据序列最前面的位置，后面跟着描述的词嵌入，注意力掩码覆盖两者；标签在每个图像位置上填 -100（交叉熵会忽略它），所以模型学的只是在给定图像的条件下预测描述里的词。下面是库里的代码，直接从 `chapter09/vlm/tiny.py` 打印出来：

# %%
print(inspect.getsource(tiny_vlm.TinyVLM.forward))

# %% [markdown]
# A short live run: 60 steps on 256 toy captions with the vision tower frozen (its
# features are computed once, not every step). The loss falls fast, but 60 steps are
# far too few for good captions.

# %% [markdown] lang="zh"
# 现场跑一小段：冻结视觉塔（它的特征只需算一次，不必每步重算），在 256 条玩具描述上训练 60 步。损失下降得很快，但要写出好的描述，60 步远远不够。

# %%
demo.freeze(vision=True, train_last_lm_layers=-1)
captions_json = tiny_vlm.write_toy_captions(lesson.out / "demo_data", 256, 5, "train")
history = tiny_vlm.train(demo, *tiny_vlm.read_captions(captions_json), steps=60, batch_size=32, log_every=20)
first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
print(lesson.t(f"  loss: {first:.2f} over the first 5 steps -> {last:.2f} over the last 5",
               f"  损失：前 5 步平均 {first:.2f} -> 最后 5 步平均 {last:.2f}"))
lesson.record(demo_loss_first=round(first, 3), demo_loss_last=round(last, 3), demo_loss=[round(x, 4) for x in history])

figure, axis = plt.subplots(figsize=(7, 3.2))
axis.plot(range(1, len(history) + 1), history, color="tab:blue")
axis.set_xlabel(lesson.t("training step (batch of 32 captions)", "训练步数（每批 32 条描述）"))
axis.set_ylabel(lesson.t("cross-entropy per caption token", "每个描述词元的交叉熵"))
axis.set_title(lesson.t("9.5 training loss of the fresh VLM, first 60 steps", "9.5 新建 VLM 前 60 步的训练损失")
               + (lesson.t(" (toy world)", "（玩具世界）") if resolve("clip", lesson.settings).is_toy else ""))
axis.grid(alpha=0.3)
lesson.save_figure(figure, "demo_loss.png")
demo.eval()
for scene, caption in zip(scenes[:2], demo.generate(images[:2])):
    print(lesson.t(f"  after 60 steps -> {caption!r}\n  truth          -> {scene.captions('en')[0]!r}",
                   f"  训练 60 步后 -> {caption!r}\n  真实描述     -> {scene.captions('en')[0]!r}"))

# %% [markdown]
# ## 3. The committed tiny VLM on held-out scenes
# `chapter09/toyworld/twins/tiny_vlm` was trained the same way for longer:
# `python -m chapter09.vlm train DATA/captions.json --out chapter09/toyworld/twins/tiny_vlm`.
# A caption counts as right when it names every object's colour and shape. Held-out
# scenes include colour-shape pairs never seen in training ("a red star").

# %% [markdown] lang="zh"
# ## 3. 仓库里训练好的小型 VLM 在留出场景上的表现
# `chapter09/toyworld/twins/tiny_vlm` 用同样的方法训练了更长时间：`python -m chapter09.vlm train DATA/captions.json --out chapter09/toyworld/twins/tiny_vlm`。一条描述说出了每个物体的颜色和形状才算正确。留出场景里包含训练中从未出现过的颜色-形状组合（"a red star"）。

# %%
model = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")


def caption_accuracy(vlm) -> float:
    captions = vlm.generate(images)
    return sum(names_every_object(c, s, "en") for c, s in zip(captions, scenes)) / len(scenes)


all_captions = model.generate(images)  # once: the examples, the score and the error count below all read these
for scene, caption in zip(scenes, all_captions[:3]):
    verdict = lesson.t("right", "正确") if names_every_object(caption, scene, "en") else \
        lesson.t("WRONG: an object's colour or shape is off", "错误：有物体的颜色或形状不对")
    print(lesson.t(f"  truth: {scene.captions('en')[0]}\n  model: {caption}   [{verdict}]",
                   f"  真实：{scene.captions('en')[0]}\n  模型：{caption}   [{verdict}]"))
accuracy = sum(names_every_object(c, s, "en") for c, s in zip(all_captions, scenes)) / len(scenes)
print(lesson.t(f"  captions naming every object's colour and shape: {accuracy:.3f} of {len(scenes)} held-out images",
               f"  说对每个物体颜色和形状的描述：{accuracy:.3f}（共 {len(scenes)} 张留出图像）"))
lesson.record(tiny_vlm_accuracy=round(accuracy, 3))

# %% [markdown]
# What goes wrong when a caption is wrong? Comparing the colours and the shapes a wrong
# caption names with the scene's, over all 120 scenes: the tiny VLM reads the toy CLIP's
# frozen vision tower, which tells shapes apart least well on the colour-shape pairs held
# out of training (chapter09/README.md, "Known gaps").

# %% [markdown] lang="zh"
# 描述错了，到底错在哪里？下面把 120 个场景里每条错误描述说出的颜色和形状，与场景本身逐一比对：小型 VLM 读的是玩具 CLIP 冻结的视觉塔，而这个视觉塔最难分清的，正是训练时留出的那些颜色-形状组合上的形状（见 chapter09/README.md 的 "Known gaps"）。

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
wrong_count = sum(not names_every_object(c, s, 'en') for c, s in zip(all_captions, scenes))
print(lesson.t(f"  {wrong_count} wrong captions of {len(scenes)}; what they get wrong (one caption can count in "
               "several rows):", f"  {len(scenes)} 条描述中错了 {wrong_count} 条；错在哪里（一条描述可能计入好几行）："))
kind_zh = {"wrong number of objects": "物体数量不对", "a colour wrong": "有颜色不对", "a shape wrong": "有形状不对"}
for kind, count in kinds.most_common():
    print(f"    {lesson.ljust(lesson.t(kind, kind_zh[kind]), 24)} {count}")
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

# %% [markdown] lang="zh"
# ## 4. fp32、bf16、动态 int8 与 ONNX Runtime：在本机实测
# * **bf16** 让每个权重的大小减半。只有在带原生 bf16 运算单元（AVX-512 BF16 或 AMX）的 CPU 上、矩阵又足够大时，它才会更快；只有 AVX2 的 CPU 要靠软件模拟，反而比 fp32 *更慢*。下面第一行会说明本次运行用的是哪种 CPU。
# * **动态 int8**（`torch.ao.quantization.quantize_dynamic`）把 Linear 层的权重存成 8 位整数，激活值在运行时即时量化；嵌入层和归一化层仍是浮点数。这是一项 CPU 技术（x86 上的内核是 FBGEMM/oneDNN，ARM 上是 QNNPACK），在有 int8 点积指令（VNNI、AMX）的 CPU 上最快。PyTorch 已经弃用 `torch.ao.quantization`，改推 **torchao**（`torchao.quantization.quantize_`），int8 及更低精度的新进展都在那里；`measure.py` 仍用旧接口（并屏蔽了它的弃用警告），因为它不需要额外安装任何包。
# * **ONNX Runtime** 把同样的 fp32 权重当作计算图来执行，层与层之间不再经过 Python。`generate` 无法整体导出，所以 `chapter09/vlm/onnx.py` 分别导出图像编码器和语言模型的单步计算，再用 NumPy 跑贪心解码循环。
#
# 延迟取单线程、16 张图像、预热之后 3 次运行的中位数；内存指加载到内存中的权重（ONNX 则是导出文件的大小）；质量是上面那个留出描述得分。像这样的小模型，瓶颈在 Python 开销而不在算术运算，所以各方案的速度差别不会大；在共享机器上，每次运行的计时也会有波动。

# %%
torch.set_num_threads(1)  # one thread: steadier timings on a shared CPU
print(f"  CPU: {cpu.describe()}")
print(lesson.t(f"  native bf16: {cpu.has_native_bf16()}; int8 dot products (VNNI/AMX): {cpu.has_int8_dot()}",
               f"  原生 bf16：{cpu.has_native_bf16()}；int8 点积指令（VNNI/AMX）：{cpu.has_int8_dot()}"))
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
    print(lesson.t("  ONNX Runtime row not measured: ", "  ONNX Runtime 这一行没有测：") + f"{type(error).__name__}: {error}")
    rows.append({"variant": "onnxruntime-fp32", "note": f"not measured: {type(error).__name__}: {error}"[:200]})
table = measure.format_table(rows, headers=lesson.t(None, measure.TABLE_HEADERS_ZH))
print(table)
(lesson.out / "precision_table.md").write_text(table + "\n", encoding="utf-8")
lesson.record(precision_rows=rows, threads=torch.get_num_threads(), latency_batch=len(sample))
bf16_kind = lesson.t("native bf16", "原生 bf16") if cpu.has_native_bf16() else lesson.t("no native bf16", "无原生 bf16")
toy_world = resolve("clip", lesson.settings).is_toy
lesson.save_figure(measure.tradeoff_plot(
    rows, lesson.t(f"tiny VLM{' (toy world)' if toy_world else ''} on {cpu.cpu_name()} ({bf16_kind}): latency, "
                   "weight memory, held-out quality",
                   f"小型 VLM{'（玩具世界）' if toy_world else ''}，{cpu.cpu_name()}（{bf16_kind}）：延迟、权重内存、留出质量"),
    axis_labels=None if lesson.lang == "en" else measure.AXIS_LABELS_ZH), "precision_latency.png")
fp32 = rows[0]
for row in rows[1:]:
    if "ms_per_item" in row:
        time_x, memory_x = row['ms_per_item'] / fp32['ms_per_item'], row['weights_mb'] / fp32['weights_mb']
        print(f"  {row['variant']:<17} " + lesson.t(
            f"{time_x:.2f}x the fp32 time, {memory_x:.2f}x the memory, quality {row['quality']} vs {fp32['quality']}",
            f"用时为 fp32 的 {time_x:.2f} 倍，内存为 {memory_x:.2f} 倍，质量 {row['quality']}（fp32：{fp32['quality']}）"))
verdict = precision_verdict(rows, cpu.has_native_bf16(), lesson.lang)
for line in verdict:
    print(f"  {line}")
lesson.record(cpu=cpu.features(), precision_verdict=verdict)

# %% [markdown]
# Whole captions mix two kinds of work: one image-encoder pass, then a Python loop of LM
# steps. The exported LM step has no key/value cache, so each ONNX step re-reads the whole
# sequence, while `generate` in torch reuses the cache. The image encoder alone is one
# graph call on both sides, a like-for-like comparison:

# %% [markdown] lang="zh"
# 生成一整条描述包含两类工作：一次图像编码器前向计算，然后是语言模型逐步生成的 Python 循环。导出的语言模型单步没有键值缓存（KV cache），所以 ONNX 每一步都要把整条序列重读一遍，而 torch 的 `generate` 会复用缓存。单看图像编码器，两边都只是一次计算图调用，这才是同等条件下的比较：

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
    print(measure.format_table(encoder_rows, headers=lesson.t(None, measure.TABLE_HEADERS_ZH)))
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

# %% [markdown] lang="zh"
# ## 小结
# * VLM 由三部分组成：视觉编码器；投影层，把图块特征变成语言模型嵌入空间里的"视觉词"；因果语言模型，先读这些视觉词再读文本。
# * 9.5 的小型 VLM 把每个图块（外加 CLS）都送进投影层：语言模型每个图块读一个视觉词元。BLIP-2 的 Q-Former（9.4）则把任何图像都压缩成固定的 32 个。
# * 只在描述数据上训练投影层（可以再加上语言模型的最后几层），就足以让一个小 VLM 开口谈论图像；冻结的视觉塔每张图只需运行一次。
# * 精度是一种取舍，要在实际运行的机器上测量：bf16 只有在原生 bf16 运算单元上才快；动态 int8 缩小 Linear 权重；ONNX Runtime 去掉框架开销。每一种都要拿 fp32 的输出来核对，不能想当然。

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

# %% [markdown] lang="zh"
# ## 练习
# `python -m chapter09.exercises start 9.5`，在 `my_exercises/ex9_5.py` 里补全函数，再运行 `python -m chapter09.exercises check 9.5`。
#
# 1. **先预测，再运行。** 训练演示模型时把 -1 换成 `train_last_lm_layers=1`。60 步之后的损失会更高还是更低？为什么？
# 2. **9.5.1 `build_vlm_inputs`**（自动检查，与 `TinyVLM.forward` 交给语言模型的内容对照）：输入序列和标签掩码。
# 3. **9.5.2 `caption_labels`**（自动检查）：带填充的描述对应的标签。
# 4. **9.5.3 `quantize_int8`**（自动检查）：按行对称的 int8 量化，也就是动态 int8 中处理权重的那一半。
# 5. **测量。** 自选一个尺寸（比如 2048 x 2048），在你的 CPU 上分别用 fp32、bf16，以及对一个 `torch.nn.Linear` 套用 `torch.ao.quantization.quantize_dynamic`，给矩阵乘法计时，并在旁边打印 `chapter09.cpu.describe()`。int8 从多大的尺寸开始胜出？
#
# ## 自测
# **1. 为什么图像位置的标签是 -100？**
# <details><summary>答案</summary>
# -100 是 PyTorch 交叉熵会忽略的索引。图像只是上下文；模型不需要预测视觉词元，只需预测它们后面描述里的词。
# </details>
#
# **2. bf16 让内存减半。它一定更快吗？**
# <details><summary>答案</summary>
# 不一定。只有硬件支持 bf16 运算（AVX-512 BF16、AMX 或 GPU）时才快；在只有 AVX2 的 CPU 上，数据要来回转换，比 fp32 还慢。而且像小型 VLM 这么小的模型，大量时间花在矩阵乘法之外，花在 Python 和零碎的小算子上。
# </details>
#
# **3. ONNX Runtime 的图像编码器更快，为什么它生成整条描述反而更慢？**
# <details><summary>答案</summary>
# 导出的语言模型单步没有键值缓存：每生成一个新词元都要重读整条序列，而 torch 的 `generate` 会复用缓存。单看编码器，两边都只是一次计算图调用。
# </details>
#
# ## 延伸阅读
# * Liu et al., *Visual Instruction Tuning* (LLaVA, arXiv 2304.08485)：视觉编码器 + 投影层 + 大语言模型，正是本节搭建的结构；重点看它的两个训练阶段。
# * Marafioti et al., *SmolVLM: Redefining small and efficient multimodal models* (arXiv 2504.05299)：256 M 的 VLM 能做到什么程度，以及图像词元的预算。
# * Jacob et al., *Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference* (arXiv 1712.05877)：动态量化背后的 int8 方案。
# * Yang et al., *Qwen3 Technical Report* (arXiv 2505.09388)：本节所用语言模型所属的模型家族。
#
# **术语对照**
# * 视觉语言模型 / vision-language model (VLM)；投影层 / projector；视觉词元 / visual token
# * 因果语言模型 / causal language model；下一个词元预测 / next-token prediction；交叉熵 / cross-entropy
# * 量化 / quantisation；动态 int8 / dynamic int8；半精度 bf16 / bfloat16；键值缓存 / KV cache
# * 冻结 / freeze；微调 / fine-tuning；延迟 / latency；贪心解码 / greedy decoding

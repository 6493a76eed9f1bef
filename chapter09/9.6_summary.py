"""9.6 Summary: every model of the chapter measured on this machine, and the learning path."""
# %% [markdown]
# # 9.6 Summary
# Every model this chapter used is loaded and run here, on this machine, in this run:
# its parameters, the memory its weights take, and the milliseconds it needs per image
# (per sentence for text models, per question for VQA). A model whose weights are not
# available is listed as *not measured*, never filled in from a model card. Run this
# section on your own machine before choosing a model: the table is its price list.

# %% [markdown] lang="zh"
# # 9.6 总结
# 本章用过的每一个模型，都在这里、在这台机器上、在这次运行中加载并实测：参数量、权重占用的内存，以及处理每张图像所需的毫秒数（文本模型按每个句子计，VQA 按每个问题计）。拿不到权重的模型会标为*未测量*，绝不从模型卡里抄数字来填。选模型之前，先在你自己的机器上跑一遍本节：这张表就是它的价目表。

# %%
import contextlib
import gc
import io

import torch

from chapter09 import config, cpu, measure
from chapter09.lesson import start, why_unavailable
from chapter09.models import ModelUnavailableError, pick_dtype, resolve
from chapter09.toyworld import generate_scenes

lesson = start("9.6", "Summary", zh="总结")
torch.set_num_threads(1)  # one thread: steadier timings on a shared CPU
print(f"  CPU: {cpu.describe()}")
cpu_dtype = str(pick_dtype("cpu")).replace("torch.", "")
print(lesson.t(f"  native bf16: {cpu.has_native_bf16()}, so the chapter's CPU dtype here is "
               f"{cpu_dtype} (models that other libraries load may stay float32)",
               f"  原生 bf16：{cpu.has_native_bf16()}，所以本章在这里的 CPU dtype 是 {cpu_dtype}"
               "（其他库加载的模型可能仍是 float32）"))
scenes = generate_scenes(8, config.TOY_HELDOUT_SEED, "heldout")
images = [scene.render() for scene in scenes]
sentences = [scene.captions("en")[0] for scene in scenes]
sentences_zh = [scene.captions("zh")[0] for scene in scenes]

# %% [markdown]
# ## 1. How each model is run
# One small loader per model: it returns the model (to count parameters and weight
# bytes) and a function that does the model's job on a batch of 8 inputs.

# %% [markdown] lang="zh"
# ## 1. 每个模型怎么运行
# 每个模型配一个小小的加载函数：它返回模型本身（用来统计参数量和权重字节数），以及一个在一批 8 个输入上完成该模型任务的函数。

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

# %% [markdown] lang="zh"
# ## 2. 实测本机现有的模型
# 延迟取单线程、每批 8 个输入、预热一次后 3 次计时运行的中位数，再除以 8。内存指加载后权重所占的字节数（按表中所示的 dtype），不是整个进程的内存。每个模型都有一行说明实际运行的是哪份权重；在玩具世界里每一个都是玩具孪生模型，它的毫秒数与真实 checkpoint 的速度毫无关系。

# %%
rows = []
for name, load, unit, purpose, used_in in CHAPTER_MODELS:
    loading = io.StringIO()
    try:
        with contextlib.redirect_stdout(loading):  # one line per model below, instead of each loader's banner
            resolved, model, run = load()
    except (ModelUnavailableError, FileNotFoundError, OSError) as error:
        reason = why_unavailable(error)
        print(f"  {name}: " + lesson.t(f"not measured ({reason})", f"未测量（{reason}）"))
        rows.append({"model": name, "weights": "not available here", "used_in": used_in, "purpose": purpose,
                     "reason": reason})
        continue
    try:
        ms_per_item = round(1000 * measure.latency_per_item(run, images, repeats=3), 2)
    except Exception as error:  # a broken checkpoint gets a row that says so; the others are still measured
        print(f"  {name}: " + lesson.t("FAILED while running: ", "运行时失败：") + f"{type(error).__name__}: {error}")
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
    per_zh = {"image": "每张图像", "sentence": "每个句子", "question": "每个问题"}[unit]
    print(f"  {name}: " + lesson.t(f"{ms_per_item} ms per {unit}  [{which}]",
                                   f"{per_zh} {ms_per_item} 毫秒  [{lesson.t(which, '玩具孪生模型') if resolved.is_toy else which}]"))
    del model, run
    gc.collect()

columns = ["model", "weights", "dtype", "parameters_m", "memory_mb", "ms_per_item", "per", "used_in", "purpose"]
PURPOSE_ZH = {  # the table's last column for a Chinese reader (results.json keeps the English)
    "CLIP": "图像和文本嵌入到同一空间", "sentence-transformers CLIP": "同一个 CLIP，封装在 encode() 后面",
    "multilingual text encoder": "把中文（50 多种语言）查询送进 CLIP 的空间", "Chinese-CLIP": "在中文图文对上训练的 CLIP",
    "BLIP captioner": "CPU 上的图像描述（英文；中文靠翻译）", "BLIP-VQA": "CPU 上的视觉问答",
    "BLIP-2 OPT-2.7b": "图像描述和问答，对话带记忆", "MarianMT en-zh": "把英文描述译成中文",
    "MarianMT zh-en": "把中文查询译成英文", "SmolVLM-256M-Instruct": "CPU 上按指令处理图像",
    "tiny VLM (toy)": "你亲手搭建并训练的 VLM",
}
WORDS_ZH = {"toy twin": "玩具孪生模型", "not available here": "本机没有", "failed to run": "运行失败",
            "image": "张图像", "sentence": "个句子", "question": "个问题"}
shown = rows if lesson.lang == "en" else [
    {**row, "purpose": PURPOSE_ZH.get(row["model"], row["purpose"]),
     **{key: WORDS_ZH.get(row[key], row[key]) for key in ("weights", "per") if key in row}} for row in rows]
table = measure.format_table(shown, columns, headers=lesson.t(None, measure.TABLE_HEADERS_ZH))
print(table)
(lesson.out / "models_table.md").write_text(table + "\n", encoding="utf-8")
measured = [row for row in rows if "ms_per_item" in row]
lesson.record(models=rows, measured=len(measured), threads=torch.get_num_threads(), batch=len(images))

# %%
if measured:
    toy = all(row["weights"] == "toy twin" for row in measured)
    title = lesson.t(f"{'toy twins: ' if toy else ''}milliseconds per item on {cpu.cpu_name()} "
                     f"({'native' if cpu.has_native_bf16() else 'no native'} bf16; 1 thread, batch of 8)",
                     f"{'玩具孪生模型：' if toy else ''}{cpu.cpu_name()} 上每项毫秒数"
                     f"（{'有' if cpu.has_native_bf16() else '无'}原生 bf16；单线程，每批 8 个）")
    lesson.save_figure(measure.bar_plot(measured, "model", "ms_per_item", title, log=True,
                                        xlabel=lesson.t("ms per item", "每项毫秒数")), "models_latency.png")

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

# %% [markdown] lang="zh"
# ## 3. 学习路线一览
# * **9.1** CLIP 把一张图像和一个句子映射成两个单位向量，它们的点积衡量两者有多匹配。
# * **9.2** 整个相似度矩阵就是一次矩阵乘法：可以双向检索，用 recall@k 评分。
# * **9.3** sentence-transformers 把 CLIP 封装进 `encode()`，多语言文本编码器让中文查询也能检索同一批图像向量。
# * **9.4** BLIP 能写图像描述、回答问题；BLIP-2 通过 32 个查询向量把图像送进冻结的大语言模型，内存够的话还能带记忆地对话（3.74 B 参数）；CPU 路线用的是 BLIP base。
# * **9.5** VLM 就是视觉编码器、投影层加语言模型；你亲手搭建并训练了一个，还测量了 bf16、int8 和 ONNX Runtime 带来的变化。
# * **综合项目**：面向一个照片库的双语图像描述和文本/图像检索，外加一个网页界面。
#
# 这张表是每个模型的*价格*；它们的质量，是在教授该模型的那一节里测的：召回率在 9.2 和 9.3，描述与 VQA 准确率在 9.4，小型 VLM 的描述得分及各种精度的对比在 9.5（在玩具世界里，都是在留出场景上测的）。选模型的原则是：在与你的数据相似的数据上测出质量够用的模型里，选最小的那个，然后在将来实际运行它的机器上，核对它在上表中的那一行。练习 9.6.2 会把这条原则写成一个函数。

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

# %% [markdown] lang="zh"
# ## 小结
# * 本章所有模型都由一个注册表（`chapter09/config.py`）提供：一个角色、它真实的 hub id，以及一个同类的玩具孪生模型，供离线运行。
# * 选模型要在它将要运行的地方实测：每项延迟、内存、留出数据上的质量，在同一次运行里并排比较。
# * CLIP 给文本和图像的匹配打分；BLIP 和 BLIP-2 为图像写文字；VLM 把图像当作词元来读；综合项目把它们组合成一个双语的检索与图像描述引擎。
# * 一个已经饱和的指标（每种方法都是 1.0）无法区分方法的优劣；换一个更难的留出集才行，hard 划分里的属性绑定和位置互换就说明了这一点。

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

# %% [markdown] lang="zh"
# ## 练习
# `python -m chapter09.exercises start 9.6`，在 `my_exercises/ex9_6.py` 里补全函数，再运行 `python -m chapter09.exercises check 9.6`。
#
# 1. **先预测，再运行。** 用 `torch.set_num_threads(2)` 运行本节。哪几行变化最大？为什么最小的模型获益最少？
# 2. **9.6.1 `latency_per_item`**（自动检查，使用假时钟）：预热、重复、取中位数。
# 3. **9.6.2 `choose_model`**（自动检查）：选出质量够用、放得下、且最快的模型。
# 4. **探索。** 运行 `CH09_HIDE_CPU_FEATURES=bf16 python run_all_sections.py 6`，把 dtype 一列和第一行输出与这次运行对比。
#
# ## 自测
# **1. 为什么要在预热之后多跑几次、取中位数？**
# <details><summary>答案</summary>
# 第一次调用要承担延迟初始化和冷缓存的开销；在共享机器上，某一次运行可能被别的程序拖慢。中位数不受单个离群值影响，平均数则会被拉偏。
# </details>
#
# **2. 这些毫秒数就是真实模型的速度吗？**
# <details><summary>答案</summary>
# 在玩具世界里不是：每一行都写明了运行的是哪份权重，而玩具孪生模型只有几 MB。要给真实的 checkpoint 定价，请在你的机器上用 `--models real` 运行本节。
# </details>
#
# ## 延伸阅读
# * 各节"延伸阅读"里的论文，以及 `chapter09/README.md` 中的术语表。
# * Dettmers et al., *LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale* (arXiv 2208.07339)：模型变大之后 int8 为什么需要小心处理（离群特征），是 9.5 动态 int8 之后的下一步。
# * PyTorch 的 *torchao* 文档：PyTorch 中 int8 及更低精度的新家。
#
# **术语对照**
# * 延迟 / latency；中位数 / median；预热 / warm-up；吞吐 / throughput
# * 量化 / quantisation；离群特征 / outlier features；注册表 / registry
# * 留出集 / held-out split；饱和 / saturation；召回率 / recall@k
# * 对比学习 / contrastive learning；温度系数 / temperature；零样本 / zero-shot；蒸馏 / distillation

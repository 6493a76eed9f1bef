"""9.4 BLIP-2 vision Q&A: captions in two languages, answers to questions, and a chat that remembers."""
# %% [markdown]
# # 9.4 BLIP-2 vision Q&A
# CLIP scores how well a text fits an image; it cannot *write* text. BLIP and BLIP-2
# can: a vision encoder turns the image into features and a language model, attending
# to them, writes a caption or an answer.
#
# BLIP-2 (`Salesforce/blip2-opt-2.7b`) keeps a frozen ViT-g image encoder and a frozen
# OPT-2.7B language model, and learns only a small *Q-Former* in between that turns the
# image into 32 "query tokens" the language model reads as if they were words. In all
# it has **3.74 B parameters: 15.0 GB (13.9 GiB) in fp32, 7.5 GB (7.0 GiB) in bf16/fp16**. A machine
# that cannot hold that takes the CPU-sized route: BLIP captioning base (247 M) and
# BLIP-VQA base (385 M). This lesson decides which route fits, says why, and then
# captions, answers questions and chats.
#
# The toy world has a BLIP-2 twin of a few MB (`chapter09/toyworld/train_blip2.py`),
# built the way BLIP-2 was: a frozen image encoder pretrained elsewhere (the toy BLIP
# captioner's vision tower), a frozen OPT-style language model pretrained on text only,
# and between them a Q-Former that alone was trained, on image-caption pairs. It fits
# anywhere, so with `--models toy` the lesson takes the BLIP-2 route and opens it up.

# %% [markdown] lang="zh"
# # 9.4 BLIP-2 视觉问答
# CLIP 能给"一段文字与一幅图有多匹配"打分，却*写不出*文字。BLIP 和 BLIP-2 可以：视觉编码器把图像变成特征，语言模型一边关注这些特征，一边写出描述或答案。
#
# BLIP-2（`Salesforce/blip2-opt-2.7b`）冻结了一个 ViT-g 图像编码器和一个 OPT-2.7B 语言模型，只训练夹在中间的小型 *Q-Former*：它把图像变成 32 个"查询向量"（query tokens），语言模型读它们就像读词一样。整个模型共有 **3.74 B 参数：fp32 下 15.0 GB（13.9 GiB），bf16/fp16 下 7.5 GB（7.0 GiB）**。装不下它的机器就走适合 CPU 的路线：BLIP 图像描述 base（247 M）和 BLIP-VQA base（385 M）。本节先判断该走哪条路线并说明理由，然后生成图像描述、回答问题、进行对话。
#
# 玩具世界里有一个只有几 MB 的 BLIP-2 孪生模型（`chapter09/toyworld/train_blip2.py`），做法和 BLIP-2 本身一样：一个在别处预训练好并冻结的图像编码器（玩具 BLIP 描述模型的视觉塔），一个只在文本上预训练并冻结的 OPT 式语言模型，以及两者之间唯一被训练的 Q-Former，训练数据是图文描述对。它在哪儿都装得下，所以加上 `--models toy` 时，本节会走 BLIP-2 路线，并把它拆开来看。

# %%
import json

import matplotlib.pyplot as plt

from chapter09 import config, vqa
from chapter09.captioning import Captioner, names_every_object
from chapter09.figures import caption_figure
from chapter09.images import load_image
from chapter09.lesson import start, why_unavailable
from chapter09.models import ModelUnavailableError
from chapter09.toyworld import generate_scenes

lesson = start("9.4", "BLIP-2 vision Q&A", zh="BLIP-2 视觉问答")

# %% [markdown]
# ## 1. Which route fits this machine?
# `vqa.choose_route` asks two questions: can BLIP-2's weights be had here (hub, cache
# or a folder you named), and do they fit in free memory, counting the weights in the
# chosen dtype plus 25% for activations and the generation cache? If either answer is
# no, it takes BLIP-VQA and gives the reason. The sum below is the real checkpoint's; the
# toy twin's weights are measured from its files (a few MB), so in the toy world BLIP-2 fits.

# %% [markdown] lang="zh"
# ## 1. 这台机器适合哪条路线？
# `vqa.choose_route` 问两个问题：这里能拿到 BLIP-2 的权重吗（hub、缓存，或你指定的文件夹）？空闲内存放得下吗（按所选 dtype 计算权重，再为激活值和生成缓存加 25%）？只要有一个答案是否定的，它就改走 BLIP-VQA，并给出原因。下面的算式用的是真实 checkpoint 的参数量；玩具孪生模型的权重大小按其文件实测（几 MB），所以在玩具世界里 BLIP-2 放得下。

# %%
free_gib = vqa.available_memory_bytes("cpu") / 2**30
lesson.say(f"""BLIP-2 OPT-2.7b: {vqa.BLIP2_PARAMS / 1e9:.2f} B parameters x 4 bytes = {vqa.BLIP2_PARAMS * 4 / 1e9:.1f} GB
    = {vqa.BLIP2_PARAMS * 4 / 2**30:.1f} GiB in fp32, x 2 bytes = {vqa.BLIP2_PARAMS * 2 / 1e9:.1f} GB =
    {vqa.BLIP2_PARAMS * 2 / 2**30:.1f} GiB in bf16/fp16, before activations.
    This machine has {free_gib:.1f} GiB of memory free right now.""",
           zh=f"""BLIP-2 OPT-2.7b：{vqa.BLIP2_PARAMS / 1e9:.2f} B 个参数 x 4 字节 = {vqa.BLIP2_PARAMS * 4 / 1e9:.1f} GB
    = {vqa.BLIP2_PARAMS * 4 / 2**30:.1f} GiB（fp32）；x 2 字节 = {vqa.BLIP2_PARAMS * 2 / 1e9:.1f} GB =
    {vqa.BLIP2_PARAMS * 2 / 2**30:.1f} GiB（bf16/fp16），还没算激活值。
    这台机器此刻有 {free_gib:.1f} GiB 空闲内存。""")
route = vqa.choose_route(lesson.settings)
reason = why_unavailable(route.reason) if route.name == "blip" else route.reason
print(lesson.t(f"  route: {route.name}\n  why:   {reason}", f"  路线：{route.name}\n  原因：{reason}"))
lesson.record(vqa_route=route.name, vqa_route_reason=reason, free_memory_gib=round(free_gib, 1))

# %% [markdown]
# ## 2. How BLIP-2 reads an image: image tokens in the prompt
# The language model reads one sequence. Since transformers 4.47 the *processor* puts
# one `<image>` placeholder per query token at the front of the prompt, and the model
# swaps the Q-Former's outputs into those slots. Checkpoints saved before that change
# lack `num_query_tokens` in their processor config and produce prompts without slots;
# `vqa.ensure_image_tokens` fills it in from the model config (the original chapter's
# notebook broke exactly here). Below, a BLIP-2 processor expands a question. On the
# BLIP-2 route it is the checkpoint's own (the toy twin's: OPT-style byte-level BPE, where
# `Ġ` marks a word that follows a space and `</s>` is OPT's start token, and 16 query
# tokens). Without any BLIP-2 we build the same processor class around the toy BLIP
# tokenizer, with BLIP-2's 32 query tokens, so the mechanics are identical.

# %% [markdown] lang="zh"
# ## 2. BLIP-2 怎样读图：提示词里的图像词元
# 语言模型只读一条序列。从 transformers 4.47 起，*processor* 会在提示词开头为每个查询向量放一个 `<image>` 占位符，模型再把 Q-Former 的输出填进这些位置。在这次改动之前保存的 checkpoint，processor 配置里没有 `num_query_tokens`，生成的提示词就没有这些占位；`vqa.ensure_image_tokens` 会从模型配置里把它补上（原章节的 notebook 恰恰就坏在这里）。下面用一个 BLIP-2 processor 展开一个问题。走 BLIP-2 路线时，用的是 checkpoint 自带的 processor（玩具孪生模型的：OPT 式字节级 BPE，`Ġ` 表示前面有空格的词，`</s>` 是 OPT 的起始词元，查询向量 16 个）。如果根本没有 BLIP-2，我们就用玩具 BLIP 分词器搭一个同类的 processor，查询向量取 BLIP-2 的 32 个，机制完全相同。

# %%
from transformers import Blip2Processor

if route.name == "blip2":
    answerer = blip2 = vqa.Blip2Answerer(route.resolved, lesson.settings)  # calls ensure_image_tokens
    processor = blip2.processor
else:
    from transformers import BlipImageProcessor

    from chapter09.toyworld.corpus import toy_corpus
    from chapter09.toyworld.tokenizers import blip_word_tokenizer

    tokenizer = blip_word_tokenizer(toy_corpus(50) + ["Question: Answer:"])
    # 224 x 224 as in Salesforce/blip2-opt-2.7b's preprocessor_config.json (BlipImageProcessor's default is 384)
    image_processor = BlipImageProcessor(size={"height": 224, "width": 224})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=32)
question = "how many shapes are there?"
inputs = processor(images=[generate_scenes(1, 3, "heldout")[0].render()], text=[f"Question: {question} Answer:"],
                   return_tensors="pt")
ids = inputs["input_ids"][0].tolist()
image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token.content)
slots = ids.count(image_token_id)
words = processor.tokenizer.convert_ids_to_tokens([i for i in ids if i != image_token_id])
print(lesson.t(f"  prompt ids: {slots} x {processor.image_token.content} then {words}",
               f"  提示词 ids：{slots} x {processor.image_token.content}，然后是 {words}"))
print(f"  pixel_values: {tuple(inputs['pixel_values'].shape)}")
if route.name != "blip2":
    print(lesson.t("  (the words come from the toy BERT-style tokenizer, hence [CLS] ... [SEP]; blip2-opt-2.7b uses OPT's\n"
                   "   byte-level BPE tokenizer, whose prompts start with </s>, OPT's start token, and have no [SEP])",
                   "  （这些词来自玩具 BERT 式分词器，所以有 [CLS] ... [SEP]；blip2-opt-2.7b 用的是 OPT 的字节级 BPE\n"
                   "   分词器，提示词以 OPT 的起始词元 </s> 开头，也没有 [SEP]）"))
lesson.record(image_token_slots=slots, num_query_tokens=processor.num_query_tokens)

# %% [markdown]
# ## 3. Inside BLIP-2: query tokens, Q-Former, projection
# What fills those `<image>` slots? Three steps, the first and last frozen:
#
# 1. the **frozen image encoder** turns the image into one token per patch plus a class
#    token (blip2-opt-2.7b: EVA ViT-g/14 at 224 px, 16 x 16 patches + 1 = **257 tokens of
#    1408 dims**);
# 2. the **Q-Former** starts from a fixed set of **learned query tokens** (32 of 768 dims),
#    the same for every image; they attend to each other and, by cross-attention (every
#    other layer in BLIP-2, every layer in the twin), to the image tokens, so whatever the
#    image, 32 vectors come out;
# 3. **`language_projection`**, one linear layer, maps them to the width of the **frozen
#    LM**'s input embeddings (OPT-2.7B: 2560), and they take the `<image>` slots.
#
# So the LM reads 32 visual tokens however many patches the encoder made. 9.5's tiny VLM
# instead sends *every* patch token through its projector (CLIP ViT-B/32 at 224 px: 50).
# Below, the same steps on the route's BLIP-2 with the library's own
# `get_image_features`, which is exactly what `generate` runs before the LM.

# %% [markdown] lang="zh"
# ## 3. BLIP-2 内部：查询向量、Q-Former、投影层
# 填进那些 `<image>` 位置的是什么？分三步，第一步和最后一步用的都是冻结的模块：
#
# 1. **冻结的图像编码器**把图像变成每个图块（patch）一个词元，外加一个类别词元（blip2-opt-2.7b：224 像素输入的 EVA ViT-g/14，16 x 16 个图块 + 1 = **257 个 1408 维的词元**）；
# 2. **Q-Former** 从一组固定的**可学习查询向量**出发（32 个，768 维），每张图像都用同一组；它们彼此做自注意力，并通过交叉注意力（BLIP-2 里每隔一层一次，孪生模型里每层都有）读取图像词元，所以不管什么图像，出来的都是 32 个向量；
# 3. **`language_projection`** 只有一个线性层，把这些向量映射到**冻结语言模型**输入嵌入的宽度（OPT-2.7B：2560），再填进 `<image>` 位置。
#
# 所以无论编码器切出多少个图块，语言模型读到的都是 32 个视觉词元。9.5 的小型 VLM 则把*每个*图块词元都送进投影层（224 像素的 CLIP ViT-B/32：50 个）。下面在当前路线的 BLIP-2 上，用库自带的 `get_image_features` 走一遍这三步，`generate` 在调用语言模型之前运行的正是它。

# %%
if route.name == "blip2":
    import torch

    model = blip2.model
    pixels = blip2.processor.image_processor(images=[generate_scenes(1, 3, "heldout")[0].render()],
                                             return_tensors="pt")["pixel_values"].to(blip2.device, blip2.dtype)
    with torch.inference_mode():
        features = model.get_image_features(pixel_values=pixels, return_dict=True)
    steps = {
        "image encoder output (frozen)": features.last_hidden_state,
        "learned query tokens": model.query_tokens,
        "Q-Former output": features.qformer_outputs.last_hidden_state,
        "language_projection output = LM input embeddings": features.pooler_output,
    }
    steps_zh = {"image encoder output (frozen)": "图像编码器输出（冻结）", "learned query tokens": "可学习的查询向量",
                "Q-Former output": "Q-Former 输出",
                "language_projection output = LM input embeddings": "language_projection 输出 = 语言模型输入嵌入"}
    for name, tensor in steps.items():
        shown = lesson.t(name, steps_zh[name])
        print(f"  {lesson.ljust(shown, 50)} {tuple(tensor.shape)}")
    counts = {"image encoder (frozen)": model.vision_model, "language model (frozen)": model.language_model,
              "Q-Former": model.qformer, "language_projection": model.language_projection}
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in counts.items()}
    counts["query tokens"] = model.query_tokens.numel()
    print(lesson.t("  parameters: ", "  参数量：") + ", ".join(f"{name} {n / 1e6:.3f} M" for name, n in counts.items()))
    trained = counts["Q-Former"] + counts["language_projection"] + counts["query tokens"]
    print(lesson.t(f"  trained in BLIP-2's recipe: {trained / 1e6:.3f} M of {sum(counts.values()) / 1e6:.3f} M ",
                   f"  按 BLIP-2 的做法需要训练的：{sum(counts.values()) / 1e6:.3f} M 中的 {trained / 1e6:.3f} M ")
          + f"({trained / sum(counts.values()):.0%})")
    lesson.record(blip2_shapes={name: list(tensor.shape) for name, tensor in steps.items()},
                  blip2_parameters=counts)

    from chapter09.vlm import tiny as tiny_vlm  # 9.5's VLM: every patch token goes to the LM

    tiny = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")
    tiny_pixels = tiny.image_processor(images=[generate_scenes(1, 3, "heldout")[0].render()],
                                       return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        tiny_visual = tiny.visual_tokens(tiny.image_features(tiny_pixels))
    rows = {"blip2-opt-2.7b (real)": ("257 x 1408", "32 x 768", "(1, 32, 2560)"),
            f"BLIP-2 twin ({'toy' if route.resolved.is_toy else route.resolved.location})":
                (" x ".join(map(str, steps["image encoder output (frozen)"].shape[1:])),
                 " x ".join(map(str, steps["learned query tokens"].shape[1:])),
                 str(tuple(features.pooler_output.shape)))}
    print(lesson.t(f"\n  {'model':<28} {'image tokens':<14} {'queries':<10} LM's visual prefix",
                   f"\n  {'模型':<26} {'图像词元':<10} {'查询向量':<6} 语言模型的视觉前缀"))
    for name, (image_tokens, queries, prefix) in rows.items():
        print(f"  {name:<28} {image_tokens:<14} {queries:<10} {prefix}")
    print(lesson.t(f"  9.5's tiny VLM (toy)         every patch + class token -> {tuple(tiny_visual.shape)}; CLIP ViT-B/32 "
                   f"at 224 px: 50 visual tokens",
                   f"  9.5 的小型 VLM（玩具）       每个图块 + 类别词元 -> {tuple(tiny_visual.shape)}；224 像素的 "
                   f"CLIP ViT-B/32：50 个视觉词元"))
    lesson.record(visual_tokens={"blip2": int(features.pooler_output.shape[1]),
                                 "tiny_vlm_9_5": int(tiny_visual.shape[1])})

# %% [markdown]
# ### The BLIP-2 twin end to end: captions and zero-shot VQA
# The twin's Q-Former was trained on one task only: the frozen LM must write the
# image's caption after the visual prefix. It never saw a question. Its language model,
# though, read text passages before the Q-Former existed: a description, then the
# description again or `Question: ... Answer: ...` about it. If the Q-Former's 16
# vectors carry what a description would, the LM can answer questions about the image
# with the paper's prompt `Question: {q} Answer:`: that is BLIP-2's *zero-shot* VQA,
# measured here on held-out scenes per kind of question. The second line gives the frozen
# LM the scene's true caption as text instead of the image: the Q-Former can at best hand
# over what a perfect description would, so that line is roughly the ceiling. For colour,
# shape and position the tiny LM is what limits the twin: even reading the true caption it
# misses many, more so about the held-out pairs ("red star", ...) it never read; counting
# is where the visual prefix loses against text. The twin is English only, like blip2-opt-2.7b (a
# Chinese caption would come from the translator). With real weights the same calls run on
# your photos, unscored.

# %% [markdown] lang="zh"
# ### BLIP-2 孪生模型从头到尾：图像描述与零样本视觉问答
# 孪生模型的 Q-Former 只学过一件事：让冻结的语言模型在视觉前缀之后写出这幅图的描述。它从没见过问题。不过它的语言模型早在 Q-Former 出现之前就读过文本：先是一段描述，再是同一段描述，或是关于它的 `Question: ... Answer: ...`。如果 Q-Former 的 16 个向量承载了一段描述所含的信息，语言模型就能用论文里的提示词 `Question: {q} Answer:` 回答关于图像的问题：这就是 BLIP-2 的*零样本*视觉问答，下面在留出的场景上按问题类型分别测量。第二行不给图像，而是把场景的真实描述以文本形式交给冻结的语言模型：Q-Former 最多只能传递一段完美描述所含的信息，所以这一行大致就是上限。对颜色、形状和位置来说，限制孪生模型的是这个很小的语言模型：即使读的是真实描述，它也错不少，遇到从没读过的颜色-形状组合（"red star" 等）时更是如此；数数则是视觉前缀比文本吃亏的地方。孪生模型和 blip2-opt-2.7b 一样只懂英文（中文描述要靠翻译模型）。换成真实权重，同样的调用可以跑在你自己的照片上，只是不打分。

# %%
if route.name == "blip2" and route.resolved.is_toy:
    from chapter09.toyworld.train_blip2 import caption_share, text_only_vqa_accuracy, vqa_accuracy_by_kind

    blip2_scenes = generate_scenes(200, config.TOY_HELDOUT_SEED, "heldout")  # held out: never trained on
    share, blip2_captions = caption_share(blip2, blip2_scenes)
    for caption, scene in list(zip(blip2_captions, blip2_scenes))[:3]:
        print(lesson.t(f"  BLIP-2 twin: {caption!r}\n    truth:     {scene.captions('en')[0]!r}",
                       f"  BLIP-2 孪生模型：{caption!r}\n    真实描述：  {scene.captions('en')[0]!r}"))
    print(lesson.t(f"  captions naming every object's colour and shape: {share:.3f} of {len(blip2_scenes)} held-out images",
                   f"  说对每个物体颜色和形状的描述：{share:.3f}（共 {len(blip2_scenes)} 张留出图像）"))
    zero_shot = vqa_accuracy_by_kind(blip2, blip2_scenes[:80])
    reading = text_only_vqa_accuracy(blip2, blip2_scenes[:80])  # the LM given the true caption instead
    print(lesson.t("  zero-shot VQA (English, exact answer): ", "  零样本视觉问答（英文，答案完全一致）：")
          + ", ".join(f"{k} {v:.3f}" for k, v in zero_shot.items()))
    print(lesson.t("  the frozen LM reading the true caption:  ", "  冻结的语言模型读真实描述：            ")
          + ", ".join(f"{k} {v:.3f}" for k, v in reading.items()))
    session = vqa.ChatSession(blip2, blip2_scenes[0].render())
    for question in ("how many shapes are there?", f"what colour is the {blip2_scenes[0].objects[0].shape}?"):
        print(f"  {lesson.t('you', '你')}> {question}\n  {lesson.t('BLIP-2 twin', 'BLIP-2 孪生模型')}> {session.ask(question)}")
    print(lesson.t("  its next prompt carries the turns: ", "  它的下一个提示词带着这些轮次：")
          + repr(session.prompt_for("anything else?")))
    lesson.record(blip2_caption_accuracy_en=round(share, 3), blip2_zero_shot_vqa=zero_shot,
                  blip2_lm_reading_true_caption=reading)
elif route.name == "blip2":
    image = load_image(config.ASSETS_DIR / json.loads((config.ASSETS_DIR / "photos.json").read_text(
        encoding="utf-8"))[0]["image"])
    print(f"  caption: {blip2.caption([image])[0]!r}; Question: what is in the picture? Answer: "
          f"{blip2.answer(image, 'what is in the picture?')!r}")

# %% [markdown]
# ## 4. Captions in English and Chinese
# The BLIP captioner writes English. On the real route, Chinese is the English caption
# translated by an English-to-Chinese MarianMT model (BLIP never saw Chinese). The toy
# twin was trained on both languages and simply continues a language token, `<en>` or
# `<zh>`. In the toy world captions can be *scored*: one is right when it names every
# object's colour and shape, no more and no fewer. The scenes are held out: new seeds,
# and colour-shape pairs (a red star, a blue triangle, ...) never shown in training.

# %% [markdown] lang="zh"
# ## 4. 中英文图像描述
# BLIP 描述模型写的是英文。走真实路线时，中文描述是用英译中的 MarianMT 模型翻译英文描述得到的（BLIP 从没见过中文）。玩具孪生模型则是用两种语言训练的，只需接着语言词元 `<en>` 或 `<zh>` 往下写。在玩具世界里描述可以*打分*：一条描述说出了每个物体的颜色和形状，不多也不少，才算正确。这些场景都是留出的：新的随机种子，以及训练中从未出现过的颜色-形状组合（红色星形、蓝色三角形……）。

# %%
scenes = generate_scenes(200, config.TOY_HELDOUT_SEED, "heldout")  # held out: never seen in training
photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))
try:
    captioner = Captioner(lesson.settings)
except ModelUnavailableError as error:  # e.g. the toy twin has not been trained in this checkout
    captioner = None
    lesson.say(f"No captioner can be loaded here, so this step is skipped: {why_unavailable(error)}",
               zh=f"这里加载不了图像描述模型，跳过这一步：{why_unavailable(error)}")
    lesson.record(captions_skipped=why_unavailable(error))

if captioner is not None:
    scored = captioner.resolved.is_toy
    if scored:
        images = [scene.render() for scene in scenes]
    else:
        images = [load_image(config.ASSETS_DIR / photo["image"]) for photo in photos]
    captions = {lang: captioner.caption(images, lang=lang) for lang in ("en", "zh")}
    for i in range(4):
        print(f"  [{i}] en: {captions['en'][i]}\n      zh: {captions['zh'][i]}")
    if scored:
        for lang in ("en", "zh"):
            accuracy = sum(names_every_object(c, s, lang) for c, s in zip(captions[lang], scenes)) / len(scenes)
            lesson.record(**{f"caption_accuracy_{lang}": round(accuracy, 3)})
            print(lesson.t(f"  [{lang}] captions naming every object's colour and shape: {accuracy:.3f} "
                           f"of {len(scenes)} held-out images",
                           f"  [{lang}] 说对每个物体颜色和形状的描述：{accuracy:.3f}（共 {len(scenes)} 张留出图像）"))
    lesson.record(caption_examples=[{"en": e, "zh": z} for e, z in zip(captions["en"][:6], captions["zh"][:6])])

    if route.name == "blip2":  # BLIP-2 captions too: an empty prompt, and the LM continues from the image tokens
        blip2_captions = answerer.caption(images[:4])
        for i, caption in enumerate(blip2_captions):
            print(f"  [{i}] BLIP-2: {caption}")
        lesson.record(blip2_captions=blip2_captions)

    which = lesson.t("the toy BLIP twin, held-out scenes", "玩具 BLIP 孪生模型，留出场景") if scored else \
        lesson.t(f"{captioner.resolved.spec.hub_id}, Chinese translated from its English",
                 f"{captioner.resolved.spec.hub_id}，中文由其英文描述翻译而来")
    figure = caption_figure(images[:4], {"en": captions["en"][:4], "zh": captions["zh"][:4]},
                            lesson.t(f"9.4 captions in English and Chinese ({which})", f"9.4 中英文图像描述（{which}）"))
    lesson.save_figure(figure, "captions.png")

# %% [markdown]
# ## 5. Visual question answering
# `vqa.load_answerer` follows the route chosen in step 1. BLIP-VQA encodes the image
# and the question together and decodes a short answer; BLIP-2 continues the prompt
# "Question: ... Answer:". In the toy world, questions ask for a count, a colour, a
# shape or a position, in English and Chinese, and answers are scored exactly. There
# the scored answerer is the BLIP-VQA twin, trained on questions in both languages, beside
# the BLIP-2 twin's zero-shot English figures of section 3.

# %% [markdown] lang="zh"
# ## 5. 视觉问答
# `vqa.load_answerer` 沿用第 1 步选定的路线。BLIP-VQA 把图像和问题一起编码，再解码出简短的答案；BLIP-2 则接着提示词 "Question: ... Answer:" 往下写。在玩具世界里，问题问的是数量、颜色、形状或位置，有英文也有中文，答案按完全一致打分。这里打分的是 BLIP-VQA 孪生模型（用两种语言的问题训练过），可与第 3 节 BLIP-2 孪生模型的零样本英文结果对照。

# %%
try:
    if route.name != "blip2" or route.resolved.is_toy:
        answerer = vqa.BlipAnswerer(lesson.settings)
except ModelUnavailableError as error:
    answerer = None
    lesson.say(f"No question-answering model can be loaded here, so steps 5 and 6 are skipped: "
               f"{why_unavailable(error)}", zh=f"这里加载不了问答模型，跳过第 5、6 步：{why_unavailable(error)}")
    lesson.record(vqa_skipped=why_unavailable(error))

if answerer is not None and answerer.resolved.is_toy:
    pairs = [(scene, qa) for scene in scenes[:80] for qa in scene.questions()]  # every question of 80 scenes
    answers = answerer.answer_batch([s.render() for s, _ in pairs], [qa["question"] for _, qa in pairs])
    right = [vqa.answers_match(answer, qa["answer"]) for answer, (_, qa) in zip(answers, pairs)]
    by_type = {}
    for ok, (_, qa) in zip(right, pairs):
        by_type.setdefault(f"{qa['type']} ({qa['lang']})", []).append(ok)
    by_type = {kind: round(sum(oks) / len(oks), 3) for kind, oks in sorted(by_type.items())}
    accuracy = sum(right) / len(right)
    print(lesson.t(f"  exact-answer accuracy: {accuracy:.3f} on {len(right)} held-out questions",
                   f"  答案完全一致的准确率：{accuracy:.3f}（共 {len(right)} 个留出问题）"))
    for kind, value in by_type.items():
        print(f"    {kind:<15} {value:.3f}")
    wrong = [(qa["question"], answer, qa["answer"]) for answer, (_, qa), ok in zip(answers, pairs, right) if not ok]
    print(lesson.t("  some misses (question, answer, truth):", "  几个答错的例子（问题，回答，正确答案）："), wrong[:3])
    lesson.record(vqa_accuracy=round(accuracy, 3), vqa_questions=len(right), vqa_accuracy_by_type=by_type)

    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.barh(list(by_type), list(by_type.values()), color="tab:green")
    for row, value in enumerate(by_type.values()):
        axis.text(value, row, f" {value:.3f}", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1.12)
    axis.set_xlabel(lesson.t("exact-answer accuracy on held-out scenes", "留出场景上答案完全一致的准确率"))
    axis.set_title(lesson.t(f"9.4 VQA ({type(answerer).__name__}), {len(right)} questions",
                            f"9.4 视觉问答（{type(answerer).__name__}），{len(right)} 个问题"))
    lesson.save_figure(figure, "vqa_accuracy.png")
elif answerer is not None:
    image = load_image(config.ASSETS_DIR / photos[0]["image"])
    for question in ("what is in the picture?", "what colour is it?"):
        print(f"  {photos[0]['image']}: {question} -> {answerer.answer(image, question)}")

# %% [markdown]
# ## 6. A chat that remembers
# A `ChatSession` keeps the question/answer history. On the BLIP-2 route each new prompt
# carries the last three turns as "Question: ... Answer: ...", so "and where is it?" can
# refer back. That format is the prompt the BLIP-2 paper used for zero-shot VQA
# ("Question: {} Answer:"); BLIP-2 OPT was neither instruction- nor chat-tuned, so
# stringing turns together is this chapter's convention, and how well the model uses
# earlier turns is something to test on your images, not a promise. BLIP-VQA reads one
# question at a time, so on that route the history is a transcript the model does not see.
# In the toy world the scripted chat below, which mixes English and Chinese, runs on the
# BLIP-VQA twin; section 3 showed the English-only BLIP-2 twin reading its history.
#
# In a terminal: `python -m chapter09.vqa chat IMAGE` (no widgets: type a question,
# `reset` forgets, an empty line quits). Below, the same loop reads a scripted conversation.

# %% [markdown] lang="zh"
# ## 6. 能记住上文的对话
# `ChatSession` 保存问答历史。走 BLIP-2 路线时，每个新提示词都带上最近三轮，格式是 "Question: ... Answer: ..."，所以"它在哪儿？"这样的追问可以指代前文。这个格式就是 BLIP-2 论文做零样本视觉问答时用的提示词（"Question: {} Answer:"）；BLIP-2 OPT 既没有做过指令微调，也没有做过对话微调，把多轮问答串起来只是本章的约定，模型能把前文用到什么程度，要在你的图像上测试，而不是默认成立。BLIP-VQA 一次只读一个问题，所以在那条路线上，历史只是一份模型看不到的记录。在玩具世界里，下面这段中英混杂的脚本对话跑在 BLIP-VQA 孪生模型上；第 3 节已经展示过只懂英文的 BLIP-2 孪生模型如何读取历史。
#
# 在终端里：`python -m chapter09.vqa chat IMAGE`（没有控件：输入问题即可，`reset` 清空记忆，空行退出）。下面用同一个循环读入一段写好的对话。

# %%
if answerer is not None:
    if answerer.resolved.is_toy:
        image, first = scenes[0].render(), scenes[0].objects[0]
        script = ["how many shapes are there?", "图中有几个图形？", f"what colour is the {first.shape}?",
                  f"where is the {first.colour} {first.shape}?", ""]
    else:
        image = load_image(config.ASSETS_DIR / photos[0]["image"])
        script = ["what animal is this?", "what colour is it?", "is it indoors?", ""]
    typed = iter(script)

    def scripted_input(prompt):  # stands in for input(): prints what a learner would type
        line = next(typed)
        print(prompt + line)
        return line

    session = vqa.ChatSession(answerer, image)
    vqa.chat_loop(session, read=scripted_input)
    print(lesson.t(f"\nThe model {'reads' if answerer.uses_history else 'does not read'} the history. "
                   f"The next BLIP-2 prompt would be:\n  {session.prompt_for('anything else?')!r}",
                   f"\n模型{'会' if answerer.uses_history else '不会'}读取历史。"
                   f"下一个 BLIP-2 提示词会是：\n  {session.prompt_for('anything else?')!r}"))
    lesson.record(chat=[{"question": q, "answer": a} for q, a in session.history])
    session.reset()  # what typing 'reset' does
    print(lesson.t(f"after reset: {len(session.history)} remembered turns", f"reset 之后：记住的轮次为 {len(session.history)}"))

# %%
lesson.finish()

# %% [markdown]
# ## Summary
# * CLIP scores text against images; BLIP and BLIP-2 write text about them: a vision encoder's
#   features, read by a language model through cross-attention (BLIP) or as a prefix of tokens (BLIP-2).
# * BLIP-2 freezes both big parts, its ViT and its LLM, and trains only the Q-Former between them:
#   a fixed set of learned query tokens (32 in blip2-opt-2.7b) that read the image and become the
#   LLM's visual prefix after one projection. Few visual tokens, few trained parameters.
# * Zero-shot VQA comes from the frozen LLM's own reading: the Q-Former was trained on captions only,
#   and the paper's `Question: … Answer:` prompt does the rest. The LLM sets the ceiling.
# * Whether BLIP-2 fits is arithmetic: parameters x bytes per parameter, plus headroom; otherwise
#   the CPU route (BLIP, BLIP-VQA) takes over, and says why.
# * Chinese captions on the real route are English captions translated (BLIP never saw Chinese).

# %% [markdown] lang="zh"
# ## 小结
# * CLIP 只给图文打分；BLIP 和 BLIP-2 能为图像写文字：视觉编码器提取特征，语言模型通过交叉注意力（BLIP）或作为一串前缀词元（BLIP-2）读取这些特征。
# * BLIP-2 冻结了两个大部件——ViT 和大语言模型——只训练两者之间的 Q-Former：一组固定数量的可学习查询向量（blip2-opt-2.7b 中是 32 个）去“读”图像，经一次投影后成为大语言模型的视觉前缀。视觉词元少，需要训练的参数也少。
# * 零样本视觉问答靠的是冻结的大语言模型自身的阅读能力：Q-Former 只在图像描述上训练过，论文中的 `Question: … Answer:` 提示词完成剩下的工作。上限由语言模型决定。
# * BLIP-2 放不放得下，是一道算术题：参数量 × 每个参数的字节数，再留出余量；放不下时改走 CPU 路线（BLIP、BLIP-VQA），并说明原因。
# * 真实路线上的中文描述，是英文描述翻译而来（BLIP 从未见过中文）。

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.4`, fill in `my_exercises/ex9_4.py`, then
# `python -m chapter09.exercises check 9.4`.
#
# 1. **Predict, then run.** How many GiB would BLIP-2 OPT-2.7b need in int8, with the 25 %
#    headroom? Would it fit on a 16 GB T4 in fp16?
# 2. **9.4.1 `chat_prompt`** (checked, against `vqa.build_prompt`): the prompt with the last turns.
# 3. **9.4.2 `weights_gib` and `fits_in_memory`** (checked): the sum `vqa.choose_route` does, in GiB.
# 4. **9.4.3 `vqa_accuracy`** (checked): exact-answer accuracy, overall and per question kind.
# 5. **Explore.** Ask the toy VQA twin a question of a kind it never saw ("is the star bigger
#    than the circle?"). What does it answer, and why can it not say "I don't know"?
#
# ## Self-check
# **1. What does the Q-Former give the language model?**
# <details><summary>Answer</summary>
# A fixed number of vectors (32 for blip2-opt-2.7b) in the LM's embedding space, computed
# from the frozen image encoder's features by learnt queries. The LM reads them in the
# `<image>` slots as if they were words; only the Q-Former (and a projection) was trained.
# </details>
#
# **2. BLIP-2 OPT-2.7b in fp32: 15.0 GB or 13.9 GiB?**
# <details><summary>Answer</summary>
# Both: 3.74e9 parameters x 4 bytes = 15.0e9 bytes = 15.0 GB (10^9 bytes) = 13.9 GiB (2^30
# bytes). Memory tools mix the two units; the chapter's code counts GiB.
# </details>
#
# **3. Does BLIP-VQA remember the previous question?**
# <details><summary>Answer</summary>
# No: it encodes the image with the current question only. The chat keeps a history, but on
# that route the model never reads it.
# </details>
#
# ## Further reading
# * Li et al., *BLIP: Bootstrapping Language-Image Pre-training* (arXiv 2201.12086): the
#   captioner and the VQA model of this section, and CapFilt, how it cleaned web captions.
# * Li et al., *BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders and
#   Large Language Models* (arXiv 2301.12597): the Q-Former, and its zero-shot VQA
#   experiments for the "Question: ... Answer:" prompt.
# * Zhang et al., *OPT: Open Pre-trained Transformer Language Models* (arXiv 2205.01068):
#   the language model inside blip2-opt-2.7b.

# %% [markdown] lang="zh"
# ## 练习
# `python -m chapter09.exercises start 9.4`，在 `my_exercises/ex9_4.py` 里补全函数，再运行 `python -m chapter09.exercises check 9.4`。
#
# 1. **先预测，再运行。** BLIP-2 OPT-2.7b 用 int8、再加 25 % 余量，需要多少 GiB？用 fp16 能装进 16 GB 的 T4 吗？
# 2. **9.4.1 `chat_prompt`**（自动检查，与 `vqa.build_prompt` 对照）：带上最近几轮对话的提示词。
# 3. **9.4.2 `weights_gib` 和 `fits_in_memory`**（自动检查）：`vqa.choose_route` 做的那笔账，以 GiB 计。
# 4. **9.4.3 `vqa_accuracy`**（自动检查）：按完全一致计算的准确率，总体和按问题类型分别统计。
# 5. **探索。** 问玩具 VQA 孪生模型一个它从没见过的问题类型（"is the star bigger than the circle?"）。它怎么回答？为什么它没法说"我不知道"？
#
# ## 自测
# **1. Q-Former 交给语言模型的是什么？**
# <details><summary>答案</summary>
# 固定数量的向量（blip2-opt-2.7b 是 32 个），位于语言模型的嵌入空间中，由可学习的查询向量从冻结图像编码器的特征中提取出来。语言模型在 `<image>` 位置读它们，就像读词一样；被训练的只有 Q-Former（和一个投影层）。
# </details>
#
# **2. BLIP-2 OPT-2.7b 在 fp32 下是 15.0 GB 还是 13.9 GiB？**
# <details><summary>答案</summary>
# 两个都对：3.74e9 个参数 x 4 字节 = 15.0e9 字节 = 15.0 GB（10^9 字节）= 13.9 GiB（2^30 字节）。各种内存工具常把这两种单位混用；本章的代码一律按 GiB 计算。
# </details>
#
# **3. BLIP-VQA 记得上一个问题吗？**
# <details><summary>答案</summary>
# 不记得：它只把图像和当前问题一起编码。对话会保存历史，但在这条路线上模型从来不读它。
# </details>
#
# ## 延伸阅读
# * Li et al., *BLIP: Bootstrapping Language-Image Pre-training* (arXiv 2201.12086)：本节的图像描述模型和 VQA 模型，以及 CapFilt（它如何清洗网络上的图片描述）。
# * Li et al., *BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders and Large Language Models* (arXiv 2301.12597)：Q-Former 的设计，以及用 "Question: ... Answer:" 提示词做的零样本视觉问答实验。
# * Zhang et al., *OPT: Open Pre-trained Transformer Language Models* (arXiv 2205.01068)：blip2-opt-2.7b 内部的语言模型。
#
# **术语对照**
# * 视觉问答 / visual question answering (VQA)；图像描述 / captioning；零样本 / zero-shot
# * 查询向量 / query tokens；交叉注意力 / cross-attention；投影层 / projection (`language_projection`)
# * 冻结 / frozen；图块 / patch；视觉前缀 / visual prefix；词元 / token
# * 留出数据 / held-out；完全一致准确率 / exact-answer accuracy；孪生模型 / toy twin

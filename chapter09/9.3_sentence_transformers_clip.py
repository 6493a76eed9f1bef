"""9.3 sentence-transformers CLIP: one encode() for images and text, and Chinese queries."""
# %% [markdown]
# # 9.3 CLIP through sentence-transformers
# sentence-transformers wraps CLIP behind one call: `model.encode(...)` takes a list of
# sentences *or* a list of images and returns vectors in the same space, batched.
# Its `util` module then does the search. A second, multilingual text encoder,
# distilled into CLIP's space, lets Chinese queries search the same image vectors.

# %% [markdown] lang="zh"
# # 9.3 用 sentence-transformers 调用 CLIP
# sentence-transformers 把 CLIP 封装成一个调用：`model.encode(...)` 既能接收一组句子，*也能*接收一组图像，返回同一空间里的向量，并且自动分批。检索交给它的 `util` 模块完成。再加一个蒸馏到 CLIP 空间里的多语言文本编码器，中文查询就能检索同一批图像向量。

# %%
import time

from sentence_transformers import SentenceTransformer, util

from chapter09.lesson import start
from chapter09.models import announce, pick_device, resolve
from chapter09.retrieval import recall_at_k
from chapter09.toyworld import generate_scenes

lesson = start("9.3", "sentence-transformers CLIP", zh="用 sentence-transformers 调用 CLIP")
device = pick_device(lesson.settings.device)
clip_model = resolve("sbert_clip", lesson.settings)
announce(clip_model)
model = SentenceTransformer(clip_model.location, device=device)

# %% [markdown]
# ## 1. One interface for images and text
# The same `encode` call handles both; it batches internally (`batch_size`), so pass
# the whole list rather than looping over items.

# %% [markdown] lang="zh"
# ## 1. 图像和文本共用一套接口
# 同一个 `encode` 调用两者都能处理，而且内部会按 `batch_size` 分批，所以要把整个列表一次传进去，不要逐条循环。

# %%
gallery = generate_scenes(300, seed=31, split="heldout")
images = [scene.render() for scene in gallery]
started = time.perf_counter()
image_embeddings = model.encode(images, batch_size=64, convert_to_tensor=True)
batched_s = time.perf_counter() - started
started = time.perf_counter()
for image in images[:30]:  # the per-item loop, on a tenth of the gallery
    model.encode([image])
loop_s = (time.perf_counter() - started) * len(images) / 30
lesson.say(f"""{len(images)} images -> {tuple(image_embeddings.shape)} in {batched_s:.2f} s batched; the same
    work one image at a time would take about {loop_s:.2f} s ({loop_s / batched_s:.1f}x slower).
    {'(128 numbers per vector in the toy CLIP; clip-ViT-B-32 gives 512.)' if clip_model.is_toy else ''}""",
           zh=f"""{len(images)} 张图像 -> {tuple(image_embeddings.shape)}，分批编码用时 {batched_s:.2f} 秒；
    同样的工作逐张处理约需 {loop_s:.2f} 秒（慢 {loop_s / batched_s:.1f} 倍）。
    {'（玩具 CLIP 每个向量 128 个数；clip-ViT-B-32 是 512 个。）' if clip_model.is_toy else ''}""")
lesson.record(images_per_s_batched=len(images) / batched_s, images_per_s_loop=len(images) / loop_s)

# %% [markdown]
# ## 2. Search with `util.semantic_search` and `util.cos_sim`

# %% [markdown] lang="zh"
# ## 2. 用 `util.semantic_search` 和 `util.cos_sim` 检索

# %%
queries = ["a red circle", "a small blue star at the top left", "a large green diamond in the center"]
query_embeddings = model.encode(queries, convert_to_tensor=True)
for query, hits in zip(queries, util.semantic_search(query_embeddings, image_embeddings, top_k=3)):
    found = "; ".join(f"{gallery[h['corpus_id']].short_caption('en')} ({h['score']:.2f})" for h in hits)
    print(f"  {query!r:<40} -> {found}")
print(lesson.t("  cos_sim matrix for the queries x first 4 images:", "  cos_sim 矩阵（查询 x 前 4 张图像）：")
      + f"\n{util.cos_sim(query_embeddings, image_embeddings[:4])}")

# %% [markdown]
# Look at the third query: the best hit may be a diamond of another colour, in another
# place. Each gallery scene holds one to three objects and its caption names all of them;
# a one-object query asks for a scene that contains *one* of them, which is not what the
# toy CLIP was trained to score (a whole caption against a whole scene). Which of the
# three queries found a scene that really contains what they ask for?

# %% [markdown] lang="zh"
# 看第三个查询：排第一的可能是一个颜色不同、位置也不同的菱形。图库里每个场景有一到三个物体，描述会把它们全部说出来；只提一个物体的查询，要找的是"包含其中一个物体"的场景，而玩具 CLIP 学的是整句描述对整幅场景打分，并没有学过这种匹配。三个查询里，哪几个找到的场景真的包含它要找的东西？

# %%
for query, hits in zip(queries, util.semantic_search(query_embeddings, image_embeddings, top_k=3)):
    words = query.split()
    found = [any(o.colour in words and o.shape in words for o in gallery[h["corpus_id"]].objects) for h in hits]
    print(f"  {query!r:<40} " + lesson.t("do the top 3 hold an object of that colour and shape?",
                                        "前 3 个结果里有这种颜色和形状的物体吗？") + f" {found}")

# %% [markdown]
# ## 3. Chinese queries: CLIP's own text tower, then a multilingual text encoder
# OpenAI's CLIP learnt from English image-text pairs only, and so did the toy CLIP. Its
# byte-level BPE has no Chinese pieces: a Chinese query falls apart into UTF-8 bytes, three
# tokens a character, whose embeddings training never shaped. Look at what each tokenizer
# makes of the same query before measuring anything.
#
# `clip-ViT-B-32-multilingual-v1` is a text-only model trained to put a sentence in any of
# 50+ languages (its model card lists zh-cn and zh-tw) where CLIP puts its English version.
# Images stay encoded by CLIP; only the query encoder changes.

# %% [markdown] lang="zh"
# ## 3. 中文查询：先用 CLIP 自己的文本塔，再换多语言文本编码器
# OpenAI 的 CLIP 只用英文图文对训练，玩具 CLIP 也是如此。它的字节级 BPE 词表里没有中文词片：中文查询会被拆成 UTF-8 字节，一个汉字三个词元，而这些词元的嵌入在训练中从未被塑造过。动手测量之前，先看看两个分词器各自把同一个查询切成了什么。
#
# `clip-ViT-B-32-multilingual-v1` 是一个纯文本模型，它的训练目标是：50 多种语言（模型卡列出了 zh-cn 和 zh-tw）的句子，都要落到 CLIP 放置其英文版本的位置。图像仍由 CLIP 编码，换掉的只有查询编码器。

# %%
multilingual = resolve("multilingual_text", lesson.settings)
announce(multilingual)
text_model = SentenceTransformer(multilingual.location, device=device)
query = "红色圆形"
for name, tokenizer in (("CLIP", model.tokenizer), ("multilingual", text_model.tokenizer)):
    pieces = tokenizer.tokenize(query)
    print(lesson.t(f"  {name:<13} tokenizer: {query} -> {len(pieces)} tokens {pieces}",
                   f"  {name:<13} 分词器：{query} -> {len(pieces)} 个词元 {pieces}"))
report = {}
for lang, encoder_name, encoder in (("en", "CLIP text tower", model), ("zh", "CLIP text tower", model),
                                    ("en", "multilingual", text_model), ("zh", "multilingual", text_model)):
    queries = [scene.captions(lang)[0] for scene in gallery]
    scores = util.cos_sim(encoder.encode(queries, convert_to_tensor=True), image_embeddings).cpu().numpy()
    recall = recall_at_k(scores, list(range(len(gallery))), ks=(1, 5))
    report[f"{lang}_{encoder_name.replace(' ', '_')}"] = recall
    shown = lesson.t(encoder_name, {"CLIP text tower": "CLIP 文本塔", "multilingual": "多语言编码器"}[encoder_name])
    print(lesson.t(f"  [{lang}] {shown:<16} text -> image over {len(gallery)} images: ",
                   f"  [{lang}] {lesson.ljust(shown, 16)} 文本 -> 图像，共 {len(gallery)} 张图像：")
          + f"R@1 {recall['R@1']:.3f}  R@5 {recall['R@5']:.3f}")
print(lesson.t(f"  chance over {len(gallery)} images: ", f"  {len(gallery)} 张图像中随机猜测：")
      + f"R@1 {1 / len(gallery):.3f}  R@5 {5 / len(gallery):.3f}")
for query in ("红色圆形", "左上方有一个小的蓝色星形"):
    for name, encoder in ((lesson.t("CLIP text tower", "CLIP 文本塔"), model),
                          (lesson.t("multilingual", "多语言编码器"), text_model)):
        hits = util.semantic_search(encoder.encode([query], convert_to_tensor=True), image_embeddings, top_k=3)[0]
        print(f"  {query} [{name}] -> " + "; ".join(gallery[h["corpus_id"]].short_caption("zh") for h in hits))
lesson.record(recall=report)

# %% [markdown]
# The second row is the one that motivates this section: Chinese queries through CLIP's own
# text tower land at chance, because nothing in its training tied those byte tokens to
# images. The same queries through the multilingual student find their images about as
# often as English does through CLIP, although the student never saw an image: it only
# learnt to reproduce CLIP's embedding of the English sentence from its Chinese
# translation. The capstone offers two more routes for the same problem: translate the
# query into English first (opus-mt zh->en, then CLIP), or a CLIP trained on Chinese pairs
# (Chinese-CLIP), and compares all four.

# %% [markdown] lang="zh"
# 第二行正是本节的出发点：中文查询走 CLIP 自己的文本塔，效果与随机猜测无异，因为训练中没有任何东西把这些字节词元和图像联系起来。同样的查询换成多语言学生模型，找回对应图像的比例和英文查询走 CLIP 时相差无几，而这个学生模型一张图像都没见过：它只学会了根据中文译文复现 CLIP 对英文原句的嵌入。同一个问题，综合项目还给出另外两条路线：先把查询译成英文（opus-mt zh->en，再交给 CLIP），或者改用在中文图文对上训练的 CLIP（Chinese-CLIP），并把四种做法放在一起比较。

# %%
lesson.finish()

# %% [markdown]
# ## Summary
# * `SentenceTransformer.encode` takes texts or images and batches them; batching is several
#   times faster than a loop because each layer runs as one large matrix product.
# * `util.semantic_search` and `util.cos_sim` are the whole search: normalised dot products and a top-k.
# * CLIP's text tower reads only what it was trained on. OpenAI's CLIP (and the toy twin)
#   learnt English pairs, so a Chinese query through it retrieves at chance.
# * A multilingual student distilled into CLIP's space (teacher: CLIP on English; student:
#   English and its translation) searches the same image vectors in 50+ languages, with no
#   image in its training.
# * Distillation needs parallel sentences only; the image side never changes.

# %% [markdown] lang="zh"
# ## 小结
# * `SentenceTransformer.encode` 接收文本或图像并自动分批；分批比循环快好几倍，因为每一层都作为一次大矩阵乘法执行。
# * `util.semantic_search` 和 `util.cos_sim` 就是检索的全部：归一化向量的点积，再取 top-k。
# * CLIP 的文本塔只读得懂训练时见过的内容。OpenAI 的 CLIP（以及玩具孪生模型）学的是英文图文对，所以中文查询经过它，检索效果只有随机水平。
# * 蒸馏到 CLIP 空间的多语言学生模型（教师：处理英文的 CLIP；学生：同时读英文句子及其译文）能用 50 多种语言检索同一批图像向量，训练中没有用到一张图像。
# * 蒸馏只需要平行语料；图像这一侧始终不变。

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.3`, fill in `my_exercises/ex9_3.py`, then
# `python -m chapter09.exercises check 9.3`.
#
# 1. **Predict, then run.** Change `batch_size=64` to 1 in step 1. How far does the speed-up fall?
# 2. **9.3.1 `semantic_search`** (checked): what `util.semantic_search` returns, written yourself.
# 3. **9.3.2 `encode_in_batches`** (checked): the batching inside `encode`, short last batch included.
# 4. **9.3.3 `distillation_loss`** (checked): the loss that made the multilingual student.
# 5. **Explore.** Write a Chinese query that mixes in an English word ("一个 red 圆形"). Which
#    encoder copes better, and why?
#
# ## Self-check
# **1. The images are encoded once, by CLIP. Why can a different text model search them?**
# <details><summary>Answer</summary>
# The multilingual model was trained to put each sentence where CLIP's text tower puts
# its English version, so its vectors live in CLIP's space. The image vectors never change.
# </details>
#
# **2. Why is batched encoding faster than a loop over single items?**
# <details><summary>Answer</summary>
# One call on 64 inputs runs each layer as one large matrix product and pays Python's and
# the framework's per-call overhead once, not 64 times.
# </details>
#
# **3. What does the distillation need: Chinese images, or Chinese sentences?**
# <details><summary>Answer</summary>
# Only sentences: English sentences and their translations. The teacher's English embedding
# is the target for both; no image is involved.
# </details>
#
# ## Further reading
# * Reimers & Gurevych, *Making Monolingual Sentence Embeddings Multilingual using Knowledge
#   Distillation* (arXiv 2004.09813): the training behind `clip-ViT-B-32-multilingual-v1`.
# * Reimers & Gurevych, *Sentence-BERT* (arXiv 1908.10084): the library's origin and its
#   `encode` / `util` design.
# * Yang et al., *Chinese CLIP* (arXiv 2211.01335): the other route, a CLIP trained on
#   Chinese pairs (the capstone compares both).

# %% [markdown] lang="zh"
# ## 练习
# `python -m chapter09.exercises start 9.3`，在 `my_exercises/ex9_3.py` 里补全函数，再运行 `python -m chapter09.exercises check 9.3`。
#
# 1. **先预测，再运行。** 把第 1 步的 `batch_size=64` 改成 1，加速比会降到多少？
# 2. **9.3.1 `semantic_search`**（自动检查）：亲手写出 `util.semantic_search` 返回的结果。
# 3. **9.3.2 `encode_in_batches`**（自动检查）：`encode` 内部的分批逻辑，包括最后那个不满的批次。
# 4. **9.3.3 `distillation_loss`**（自动检查）：训练出多语言学生模型的那个损失函数。
# 5. **探索。** 写一个夹着英文单词的中文查询（"一个 red 圆形"）。哪个编码器应付得更好？为什么？
#
# ## 自测
# **1. 图像只由 CLIP 编码一次。为什么换一个文本模型也能检索它们？**
# <details><summary>答案</summary>
# 多语言模型的训练目标，就是把每个句子放到 CLIP 文本塔放置其英文版本的位置，所以它输出的向量本来就在 CLIP 的空间里。图像向量始终不变。
# </details>
#
# **2. 为什么分批编码比逐条循环快？**
# <details><summary>答案</summary>
# 对 64 个输入调用一次，每一层都作为一次大矩阵乘法执行，Python 和框架的单次调用开销也只付一次，而不是 64 次。
# </details>
#
# **3. 蒸馏需要什么：中文图像，还是中文句子？**
# <details><summary>答案</summary>
# 只需要句子：英文句子及其译文。教师模型对英文句子的嵌入是两者共同的目标，整个过程不涉及图像。
# </details>
#
# ## 延伸阅读
# * Reimers & Gurevych, *Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation* (arXiv 2004.09813)：`clip-ViT-B-32-multilingual-v1` 背后的训练方法。
# * Reimers & Gurevych, *Sentence-BERT* (arXiv 1908.10084)：这个库的由来，以及 `encode` / `util` 的设计思路。
# * Yang et al., *Chinese CLIP* (arXiv 2211.01335)：另一条路线，即在中文图文对上训练的 CLIP（综合项目比较了两者）。
#
# **术语对照**
# * 知识蒸馏 / knowledge distillation；教师模型 / teacher；学生模型 / student
# * 词元 / token；分词器 / tokenizer；字节级 BPE / byte-level BPE
# * 嵌入 / embedding；余弦相似度 / cosine similarity；召回率 / recall（R@1、R@5）
# * 文本塔 / text tower；平行语料 / parallel sentences；分批 / batching

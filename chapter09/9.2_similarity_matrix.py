"""9.2 Similarity matrix: many images against many captions, zero-shot classification, top-k retrieval."""
# %% [markdown]
# # 9.2 The similarity matrix
# Encode N images and M captions once, multiply the two matrices, and every
# image-caption score appears at once. The same matrix gives zero-shot
# classification (captions are class prompts) and retrieval in both directions.

# %% [markdown] lang="zh"
# # 9.2 相似度矩阵
# N 张图像和 M 条描述各编码一次，两个矩阵一乘，所有图文对的得分便一次全部算出。同一个矩阵还能做零样本分类（把类别提示词当作描述），以及双向检索。

# %%
import json

import numpy as np
import torch

from chapter09 import config
from chapter09.figures import probability_heatmaps, similarity_figure
from chapter09.images import load_image
from chapter09.lesson import clip_encoder, start
from chapter09.retrieval import accuracy_margin, recall_at_k, recall_both_ways, top_k, zero_shot_classify
from chapter09.toyworld import generate_scenes
from chapter09.toyworld.eval import class_name_prompts, ensemble_prompts, hard_family_accuracy
from chapter09.training import clip_contrastive_loss

lesson = start("9.2", "Similarity matrix", zh="相似度矩阵")
encoder = clip_encoder(lesson)

# %% [markdown]
# ## 1. N images x M captions
# Six held-out scenes and their captions. Row i is image i and column j is caption j, so a
# good model puts the highest score of each row on the diagonal. Captions are long, so the
# columns are numbered and the key under the heat-map lists them. The captions are
# English only: this CLIP, like `openai/clip-vit-base-patch32`, learnt from English pairs,
# and 9.1 showed it scores a Chinese caption like an unrelated one (9.3 brings Chinese into
# the same space with a multilingual text encoder).

# %% [markdown] lang="zh"
# ## 1. N 张图像 x M 条描述
# 取 6 个留出场景及其描述。第 i 行是图像 i，第 j 列是描述 j，好的模型会让每一行的最高分落在对角线上。描述比较长，所以列只标编号，全文列在热力图下方的对照表里。描述只用英文：这个 CLIP 和 `openai/clip-vit-base-patch32` 一样，只学过英文图文对；9.1 已经看到，它给中文描述打的分和给无关描述的差不多（9.3 会借助多语言文本编码器，把中文带进同一个空间）。

# %%
scenes = generate_scenes(6, seed=21, split="heldout")
images = [scene.render() for scene in scenes]
captions = [scene.captions("en")[0] for scene in scenes]
image_embeddings = encoder.encode_images(images)
similarity = image_embeddings @ encoder.encode_texts(captions).T

which = lesson.t("the toy CLIP twin", "玩具 CLIP 孪生模型") if encoder.resolved.is_toy else encoder.resolved.spec.hub_id
figure = similarity_figure(images, {lesson.t("English captions", "英文描述（模型读的是英文）"): (captions, similarity)},
                           lesson.t(f"Cosine similarity: images (rows) x captions (columns), {which}",
                                    f"余弦相似度：图像（行）x 描述（列），{which}"), lang=lesson.lang,
                           glosses=[scene.captions("zh")[0] for scene in scenes] if lesson.lang == "zh" else None)
lesson.save_figure(figure, "similarity_matrix.png")
diagonal_wins = int((similarity.argmax(axis=1) == np.arange(len(images))).sum())
lesson.say(f"{diagonal_wins} of {len(images)} images score highest with their own caption.",
           zh=f"{len(images)} 张图像中有 {diagonal_wins} 张与自己的描述得分最高。")
lesson.record(similarity_matrix=similarity.round(3).tolist(), diagonal_wins=diagonal_wins)

# %% [markdown]
# ## 2. The diagonal is what CLIP was trained for
# CLIP learns from batches of matching pairs: for each image, its own caption must win
# among all captions in the batch, and for each caption its own image. Scale the cosine
# matrix by the learnt `logit_scale` (stored as a logarithm; exp(logit_scale) is 1 over the
# softmax temperature, capped at 100), take a softmax along each row (image -> text) and
# along each column (text -> image), and the loss is the cross-entropy of the diagonal,
# averaged over both directions: the symmetric InfoNCE loss. Here it is on the lesson's
# own 6 x 6 matrix, written out, then by the function the toy CLIP was trained with.

# %% [markdown] lang="zh"
# ## 2. 对角线正是 CLIP 的训练目标
# CLIP 从一批批匹配的图文对中学习：对每张图像，它自己的描述要在这一批的所有描述中胜出；对每条描述，它自己的图像也要胜出。把余弦矩阵乘上学到的 `logit_scale`（存的是对数；exp(logit_scale) 是 softmax 温度系数的倒数，上限 100），沿每一行（图像 -> 文本）、每一列（文本 -> 图像）各做一次 softmax，损失就是对角线上的交叉熵，再对两个方向取平均：这就是对称 InfoNCE 损失。下面先在本节这个 6 x 6 矩阵上把它逐步写出来，再用训练玩具 CLIP 时用的函数算一遍。

# %%
scale = float(encoder.model.logit_scale.detach().exp().clamp(max=100))
logits = scale * similarity  # 6 images x 6 captions
probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
probabilities /= probabilities.sum(axis=1, keepdims=True)  # softmax over each row: image -> which caption?
columns = np.exp(logits - logits.max(axis=0, keepdims=True))
columns /= columns.sum(axis=0, keepdims=True)  # softmax over each column: caption -> which image?
print(lesson.t(f"  exp(logit_scale) = {scale:.1f} (the real CLIP ends training at 100, its cap)",
               f"  exp(logit_scale) = {scale:.1f}（真实的 CLIP 训练结束时正好停在上限 100）"))
cool = np.exp(similarity) / np.exp(similarity).sum(axis=1, keepdims=True)  # the same rows at a scale of 1
figure = probability_heatmaps(
    {lesson.t(f"image -> caption, scale {scale:.0f}\n(row i: image i, columns: captions)",
              f"图像 -> 描述，缩放系数 {scale:.0f}\n（第 i 行：图像 i；各列：描述）"): probabilities,
     lesson.t(f"caption -> image, scale {scale:.0f}\n(column j: caption j, rows: images)",
              f"描述 -> 图像，缩放系数 {scale:.0f}\n（第 j 列：描述 j；各行：图像）"): columns,
     lesson.t("image -> caption at scale 1\n温度过高：概率几乎平均",
              "图像 -> 描述，缩放系数 1\n温度过高：概率几乎平均"): cool},
    lesson.t("9.2 softmax of the similarity matrix: the diagonal is CLIP's training target",
             "9.2 相似度矩阵的 softmax：对角线就是 CLIP 的训练目标"))
lesson.save_figure(figure, "softmax.png")


def cross_entropy_of_the_diagonal(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(np.diag(log_softmax)))


loss = (cross_entropy_of_the_diagonal(logits) + cross_entropy_of_the_diagonal(logits.T)) / 2
library_loss = float(clip_contrastive_loss(torch.tensor(image_embeddings), torch.tensor(encoder.encode_texts(captions)),
                                           encoder.model.logit_scale.detach().float()))
lesson.say(f"""Symmetric contrastive loss on these 6 pairs: {loss:.3g} written out, {library_loss:.3g} from
    chapter09.training.clip_contrastive_loss. A perfect model drives it towards 0; with 6 captions a
    model that guesses has log 6 = {np.log(6):.2f}. The temperature matters: at a scale of 1 the same
    matrix would give {(cross_entropy_of_the_diagonal(similarity) + cross_entropy_of_the_diagonal(similarity.T)) / 2:.2f},
    because cosines between -1 and 1 are too close together for a confident softmax.""",
           zh=f"""这 6 对的对称对比损失：手写版为 {loss:.3g}，chapter09.training.clip_contrastive_loss
    算出 {library_loss:.3g}。完美的模型会把它压向 0；面对 6 条描述，随机瞎猜的模型得到 log 6 = {np.log(6):.2f}。
    温度系数很关键：缩放系数为 1 时，同一个矩阵的损失是
    {(cross_entropy_of_the_diagonal(similarity) + cross_entropy_of_the_diagonal(similarity.T)) / 2:.2f}，
    因为 -1 到 1 之间的余弦值挨得太近，softmax 给不出有把握的概率。""")
lesson.record(contrastive_loss=round(loss, 4), logit_scale_exp=round(scale, 2))

# %% [markdown]
# ## 3. Zero-shot classification with prompt templates
# To classify without training, write one prompt per class and pick the most similar. The
# CLIP paper's default prompt is the class name in a template, "a photo of a {}". One
# wording carries its own quirks, and a class name alone says nothing of what else is in
# the picture. *Prompt ensembling* (CLIP paper, section 3.1.4) encodes many prompts per
# class, varying the wording and the attributes the class does not decide (the paper's 80
# ImageNet templates include "a photo of a big {}" and "a photo of a small {}"), and takes
# the mean of their unit vectors, normalised again, as the class's vector.
#
# Here the classes are the five shapes of single-object held-out scenes. The single prompt
# is the paper's default, class name only ("a photo of a circle"); the ensemble varies
# three templates over every colour, size and place: 324 prompts per shape. Written out,
# the classifier is a few lines: one unit vector per class, one matrix product, the best
# class per row; `retrieval.zero_shot_classify` does exactly this.

# %% [markdown] lang="zh"
# ## 3. 用提示词模板做零样本分类
# 不经训练也能分类：给每个类别写一条提示词，挑最相似的那个。CLIP 论文默认的提示词是把类别名套进模板 "a photo of a {}"。可是单一措辞自带它的怪癖，而且光有类别名，画面里还有什么它一概不提。*提示词集成*（prompt ensembling，CLIP 论文 3.1.4 节）为每个类别编码许多条提示词，既变换措辞，也变换类别本身不决定的那些属性（论文为 ImageNet 写的 80 个模板里就有 "a photo of a big {}" 和 "a photo of a small {}"），再把它们的单位向量取平均、重新归一化，作为这个类别的向量。
#
# 这里的类别是单物体留出场景里的五种形状。单条提示词用论文的默认写法，只含类别名（"a photo of a circle"）；集成则用三个模板，遍历每种颜色、大小和位置：每种形状 324 条提示词。手写出来，这个分类器只有几行：每个类别一个单位向量，一次矩阵乘法，每行取得分最高的类别；`retrieval.zero_shot_classify` 做的正是这件事。

# %%
# single-object held-out scenes; unique=False lets a description come back, each time drawn anew (its own jitter
# and background), so the test set is not capped at the 540 distinct single-object descriptions
test_scenes = [s for s in generate_scenes(2000, seed=25, split="heldout", unique=False) if len(s.objects) == 1]
test_embeddings = encoder.encode_images([s.render() for s in test_scenes])


def classify(image_embeddings, class_prompts):
    names = list(class_prompts)
    centroids = np.stack([encoder.encode_texts(class_prompts[name]).mean(axis=0) for name in names])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return [names[i] for i in (image_embeddings @ centroids.T).argmax(axis=1)]


truth = [s.objects[0].shape for s in test_scenes]
hits = {}
for label, prompts in (("single prompt", class_name_prompts("shape")), ("ensemble", ensemble_prompts("shape"))):
    hits[label] = np.array([p == t for p, t in zip(classify(test_embeddings, prompts), truth)])
    shown = lesson.ljust({"single prompt": "单条提示词", "ensemble": "提示词集成"}[label], 10)
    print(lesson.t(f"  [en] shape, {label:<13}: {hits[label].mean():.3f} on {len(test_scenes)} held-out images "
                   f"({len(prompts['circle'])} prompt{'s' if len(prompts['circle']) > 1 else ''} per class, "
                   f"e.g. {prompts['circle'][0]!r})",
                   f"  [en] 形状，{shown}：{hits[label].mean():.3f}，共 {len(test_scenes)} 张留出图像"
                   f"（每类 {len(prompts['circle'])} 条提示词，例如 {prompts['circle'][0]!r}）"))
    lesson.record(**{f"zero_shot_shape_en_{label.replace(' ', '_')}": float(hits[label].mean())})
same = classify(test_embeddings, ensemble_prompts("shape")) == \
    zero_shot_classify(encoder, test_embeddings, ensemble_prompts("shape"))[0]
print(lesson.t(f"  written-out classifier agrees with retrieval.zero_shot_classify on every image: {same}",
               f"  手写的分类器与 retrieval.zero_shot_classify 在每张图像上结果都相同：{same}"))
margin = accuracy_margin(hits["ensemble"], hits["single prompt"])
lesson.record(ensembling_margin=margin)
lesson.say(f"""Ensembling adds {100 * margin['margin']:+.1f} points, with a standard error of
    {100 * margin['standard_error']:.1f} points (a paired bootstrap over the {margin['items']} images): the margin
    is {margin['standard_errors_from_zero']:.1f} standard errors from zero. {margin['only_hits']} images
    only the ensemble gets right, {margin['only_baseline']} only the single prompt. The CLIP paper measured
    +3.5 points on ImageNet from its 80 templates (and almost 5 with prompt engineering on top).""",
           zh=f"""提示词集成带来 {100 * margin['margin']:+.1f} 个百分点的提升，标准误为
    {100 * margin['standard_error']:.1f} 个百分点（在 {margin['items']} 张图像上做配对 bootstrap）：
    这个差距离 0 有 {margin['standard_errors_from_zero']:.1f} 个标准误。只有集成答对的图像有
    {margin['only_hits']} 张，只有单条提示词答对的有 {margin['only_baseline']} 张。CLIP 论文用 80 个模板在
    ImageNet 上测得 +3.5 个百分点（再加上提示工程，接近 5 个百分点）。""")

# %% [markdown]
# Compare the margin with its standard error before believing it: on a few dozen images a
# gain of this size would be invisible. The same ensemble, over shapes, sizes and places,
# names colours:

# %% [markdown] lang="zh"
# 先拿这个差距和它的标准误比一比，再决定信不信：如果只在几十张图像上测，这么大的提升根本看不出来。同一套集成（遍历形状、大小和位置）也能用来识别颜色：

# %%
predicted, _names, _probs = zero_shot_classify(encoder, test_embeddings, ensemble_prompts("colour"))
colour_accuracy = float(np.mean([p == s.objects[0].colour for p, s in zip(predicted, test_scenes)]))
print(lesson.t(f"  [en] colour accuracy {colour_accuracy:.3f} on {len(test_scenes)} held-out images "
               f"({len(ensemble_prompts('colour')['red'])} prompts per class)",
               f"  [en] 颜色准确率 {colour_accuracy:.3f}，共 {len(test_scenes)} 张留出图像"
               f"（每类 {len(ensemble_prompts('colour')['red'])} 条提示词）"))
lesson.record(zero_shot_colour_en=colour_accuracy, zero_shot_shape_en=float(hits["ensemble"].mean()))

# %% [markdown]
# The same idea on real photos, with everyday class names. The real CLIP was trained for
# this: the CLIP paper reports 63.2 % zero-shot top-1 accuracy on ImageNet's 1000 classes
# for ViT-B/32 (arXiv 2103.00020), so expect most of these nine photos to be labelled
# right with real weights (not measured here). The toy CLIP has only ever seen coloured
# shapes, so its guesses here are noise: zero-shot only reaches as far as the training data.

# %% [markdown] lang="zh"
# 同样的思路，换到真实照片和日常类别名上。真实的 CLIP 就是为此而训练的：CLIP 论文报告，ViT-B/32 在 ImageNet 1000 个类别上的零样本 top-1 准确率为 63.2 %（arXiv 2103.00020），所以换上真实权重后，这九张照片应该大多能标对（这里没有实测）。玩具 CLIP 只见过彩色几何形状，它在这里的猜测纯属噪声：零样本能力走多远，取决于训练数据覆盖到哪里。

# %%
photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))
photo_embeddings = encoder.encode_images([load_image(config.ASSETS_DIR / p["image"]) for p in photos])
classes = {p["caption_en"]: [f"a photo of {p['caption_en']}"] for p in photos}
predicted, _names, _probs = zero_shot_classify(encoder, photo_embeddings, classes)
correct = sum(guess == p["caption_en"] for guess, p in zip(predicted, photos))
print(lesson.t(f"  [en] real photos: {correct}/{len(photos)} correct (chance: 1 in {len(photos)})",
               f"  [en] 真实照片：答对 {correct}/{len(photos)}（随机猜测：{len(photos)} 选 1）")
      + (lesson.t("  (toy model: expected to be near chance)", "  （玩具模型：预计接近随机水平）")
         if encoder.resolved.is_toy else ""))
lesson.record(photo_zero_shot_en=correct / len(photos))

# %% [markdown]
# ## 4. Top-k retrieval, both ways
# Text to image: rank a gallery by similarity to the query. Image to text: rank
# captions for an image. Recall@k is the share of queries whose answer is in the top k.
# Written out it is two lines: rank each row, and ask whether the right column is among
# the first k. The library's `recall_at_k` (which also accepts several right answers per
# query) must agree.

# %% [markdown] lang="zh"
# ## 4. 双向 top-k 检索
# 文本检索图像：按与查询的相似度给图库排序。图像检索文本：为一张图像给各条描述排序。Recall@k（召回率）是正确答案排进前 k 名的查询所占的比例。手写出来只有两行：对每一行排序，再看正确的那一列在不在前 k 个里。库里的 `recall_at_k`（它还允许一个查询有多个正确答案）必须与之一致。

# %%
gallery = generate_scenes(200, seed=23, split="heldout")
gallery_embeddings = encoder.encode_images([s.render() for s in gallery])
query_texts = [s.captions("en")[1] for s in gallery]
query_embeddings = encoder.encode_texts(query_texts)
scores = query_embeddings @ gallery_embeddings.T
ranked = np.argsort(-scores, axis=1)  # row q: the gallery, best match for query q first
by_hand = {f"R@{k}": float(np.mean([q in ranked[q, :k] for q in range(len(scores))])) for k in (1, 5)}
text_to_image = recall_at_k(scores, list(range(len(gallery))), ks=(1, 5))
image_to_text = recall_at_k(scores.T, list(range(len(gallery))), ks=(1, 5))
print(lesson.t(f"  recall written out: {by_hand}; retrieval.recall_at_k: {text_to_image}",
               f"  手写的召回率：{by_hand}；retrieval.recall_at_k：{text_to_image}"))
lesson.say(f"""Gallery of {len(gallery)} held-out scenes. Text -> image: R@1 {text_to_image['R@1']:.3f},
    R@5 {text_to_image['R@5']:.3f}. Image -> text: R@1 {image_to_text['R@1']:.3f}, R@5 {image_to_text['R@5']:.3f}.""",
           zh=f"""图库包含 {len(gallery)} 个留出场景。文本 -> 图像：R@1 {text_to_image['R@1']:.3f}，
    R@5 {text_to_image['R@5']:.3f}。图像 -> 文本：R@1 {image_to_text['R@1']:.3f}，R@5 {image_to_text['R@5']:.3f}。""")
best = top_k(encoder.encode_texts(["a red circle"]) @ gallery_embeddings.T, 3)[0]
print(lesson.t("  query 'a red circle': top 3 = ", "  查询 'a red circle'：前 3 名 = ")
      + lesson.t("; ", "；").join(gallery[i].short_caption(lesson.lang) for i in best))
lesson.record(text_to_image=text_to_image, image_to_text=image_to_text)

# %% [markdown]
# Recall is high with full captions, and yet a short query can put a near miss first. The
# recall above used each scene's full caption (sizes, colours, shapes and places of every object); a query such as
# "a red circle" says much less, matches every scene with a red circle in it equally well,
# and leaves the ranking to small differences, where neighbouring colours (red, orange) and
# similar shapes lie close in the embedding space:

# %% [markdown] lang="zh"
# 用完整描述时召回率很高，可一个简短的查询却可能把“差一点”的结果排在第一。上面的召回率用的是每个场景的完整描述（每个物体的大小、颜色、形状和位置）；像 "a red circle" 这样的查询说的要少得多，凡是含红色圆形的场景它都匹配得一样好，排名只能靠细微差别来决定，而相近的颜色（红与橙）和相似的形状在嵌入空间里本来就挨得很近：

# %%
red, orange, red_square = encoder.encode_texts(["a red circle", "an orange circle", "a red square"])
print(lesson.t(f"  cosine('a red circle', 'an orange circle') = {float(red @ orange):.3f}; "
               f"cosine('a red circle', 'a red square') = {float(red @ red_square):.3f}",
               f"  余弦相似度('a red circle', 'an orange circle') = {float(red @ orange):.3f}；"
               f"余弦相似度('a red circle', 'a red square') = {float(red @ red_square):.3f}"))
has_red_circle = [any(o.colour == "red" and o.shape == "circle" for o in s.objects) for s in gallery]
print(lesson.t(f"  {sum(has_red_circle)} of {len(gallery)} gallery scenes contain a red circle",
               f"  图库的 {len(gallery)} 个场景中，有 {sum(has_red_circle)} 个含红色圆形"))

# %% [markdown]
# ### A harder gallery: the bag-of-words weakness
# A gallery where every scene differs from the others in several words is easy. The toy
# world's `hard` split holds 2-4 objects in families of three scenes whose captions use
# exactly the same words: a scene, its *binding swap* (two objects trade colours: "a red
# circle and a blue star" becomes "a blue circle and a red star") and its *position swap*
# (two objects trade places). A model that reads a caption as a bag of words cannot tell a
# family apart, and real CLIPs often cannot: ARO (Yuksekgonul et al., arXiv 2210.01936)
# found CLIP little better than chance at telling which attribute goes with which object
# and at word order, and on Winoground (Thrush et al., arXiv 2204.03162), pairs of images
# whose captions hold the same words in a different order, CLIP's image and group scores
# fall below chance. Recall on the hard gallery, and how often a caption picks its own
# scene among its family of three (chance 1/3):

# %% [markdown] lang="zh"
# ### 更难的图库：词袋的弱点
# 如果图库里每个场景都和其他场景差着好几个词，检索就很容易。玩具世界的 `hard` 划分（困难划分）里，每个场景有 2-4 个物体，三个场景一组，同组的描述用词完全相同：一个基础场景；它的*绑定互换*，即两个物体交换颜色（"a red circle and a blue star" 变成 "a blue circle and a red star"）；以及它的*位置互换*，即两个物体交换位置。把描述当成一袋词（词袋）来读的模型，分不清同组的三个场景，真实的 CLIP 也常常分不清：ARO（Yuksekgonul et al., arXiv 2210.01936）发现，在判断哪个属性属于哪个物体（属性绑定）和辨别词序上，CLIP 只比随机猜测略好；Winoground（Thrush et al., arXiv 2204.03162）由成对的图像组成，两条描述用词相同、顺序不同，CLIP 在上面的图像分数和组分数都低于随机水平。下面看困难图库上的召回率，以及一条描述在同组三个场景里选中自己场景的比例（随机为 1/3）：

# %%
hard = generate_scenes(len(gallery) - len(gallery) % 3, seed=23, split="hard")
hard_embeddings = encoder.encode_images([s.render() for s in hard])
hard_queries = encoder.encode_texts([s.captions("en")[1] for s in hard])
hard_recall = recall_both_ways(hard_queries, hard_embeddings, list(range(len(hard))), ks=(1, 5))
families = hard_family_accuracy(hard_queries @ hard_embeddings.T)
for name, recall in (("plain held-out", {"text_to_image": text_to_image, "image_to_text": image_to_text}),
                     ("hard", hard_recall)):
    shown = lesson.ljust({"plain held-out": "普通留出图库", "hard": "困难图库"}[name], 12)
    print(lesson.t(f"  {name:<15} gallery of {len(gallery) if name != 'hard' else len(hard)}: text -> image "
                   f"R@1 {recall['text_to_image']['R@1']:.3f}  R@5 {recall['text_to_image']['R@5']:.3f};  image -> text "
                   f"R@1 {recall['image_to_text']['R@1']:.3f}  R@5 {recall['image_to_text']['R@5']:.3f}",
                   f"  {shown}（{len(gallery) if name != 'hard' else len(hard)} 个场景）：文本 -> 图像 "
                   f"R@1 {recall['text_to_image']['R@1']:.3f}  R@5 {recall['text_to_image']['R@5']:.3f}；图像 -> 文本 "
                   f"R@1 {recall['image_to_text']['R@1']:.3f}  R@5 {recall['image_to_text']['R@5']:.3f}"))
print(lesson.t(f"  own scene among its family of 3 ({families['families']} families): {families['all']:.3f} "
               f"(binding swap {families['binding']:.3f}, position swap {families['position']:.3f}, "
               f"base {families['base']:.3f}; chance {families['chance']:.3f})",
               f"  在同组 3 个场景中选中自己的场景（共 {families['families']} 组）：{families['all']:.3f}"
               f"（绑定互换 {families['binding']:.3f}，位置互换 {families['position']:.3f}，"
               f"基础场景 {families['base']:.3f}；随机 {families['chance']:.3f}）"))
lesson.record(hard_text_to_image=hard_recall["text_to_image"], hard_image_to_text=hard_recall["image_to_text"],
              hard_family_accuracy=families)
lesson.say(f"""The same model, the same kind of captions: text -> image R@1 falls from
    {text_to_image['R@1']:.3f} to {hard_recall['text_to_image']['R@1']:.3f} when the gallery holds scenes described
    by the same words. Within a family the caption finds its own scene {families['all']:.3f} of the time: far above
    the {families['chance']:.3f} of a pure bag of words, so this CLIP does use word order, yet {1 - families['all']:.1%}
    of the captions prefer a scene described by the same words in another order.""",
           zh=f"""同一个模型，同一类描述：当图库里有用相同词语描述的场景时，文本 -> 图像的 R@1 从
    {text_to_image['R@1']:.3f} 降到 {hard_recall['text_to_image']['R@1']:.3f}。在同组三个场景里，描述选中自己场景的比例是
    {families['all']:.3f}，远高于纯词袋模型的 {families['chance']:.3f}，可见这个 CLIP 确实用到了词序；但仍有
    {1 - families['all']:.1%} 的描述更偏向同组的另一个场景（用词相同，顺序不同）。""")

# %%
lesson.finish()

# %% [markdown]
# ## Summary
# * One matrix product of unit image and text vectors scores every image against every
#   caption; the diagonal holds the true pairs, and CLIP's symmetric contrastive loss trains
#   each row and each column to pick it, at a learnt temperature.
# * Zero-shot classification is retrieval over class prompts. Prompt ensembling, the mean of
#   many prompts' unit vectors over wordings and nuisance attributes, beats the class name in
#   one template; measure such a margin against its noise, on enough held-out images.
# * Recall@k reads the same matrix by rows (text -> image) or by columns (image -> text).
# * A saturated score says little: on a gallery whose captions share every word with another
#   scene's, recall drops; that is where CLIPs read captions as bags of words (ARO, Winoground).
# * This CLIP reads English only; Chinese needs another text encoder (9.3).

# %% [markdown] lang="zh"
# ## 小结
# * 单位图像向量与单位文本向量做一次矩阵乘法，每张图像对每条描述的得分就都有了；对角线上是真正的配对，CLIP 的对称对比损失在学到的温度系数下，训练每一行、每一列都选中它。
# * 零样本分类就是在类别提示词上做检索。提示词集成，即对许多条提示词（覆盖不同措辞和无关属性）的单位向量取平均，胜过把类别名套进单一模板；这样的差距要和噪声对比，并在足够多的留出图像上测量。
# * Recall@k 读的是同一个矩阵：按行读是文本 -> 图像，按列读是图像 -> 文本。
# * 已经饱和的分数说明不了多少问题：如果图库里每条描述都与另一个场景的描述用词完全相同，召回率就会下降；CLIP 把描述当词袋来读的毛病正出在这里（ARO、Winoground）。
# * 这个 CLIP 只读得懂英文；中文需要另一个文本编码器（9.3）。

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.2`, fill in `my_exercises/ex9_2.py`, then
# `python -m chapter09.exercises check 9.2`.
#
# 1. **Predict, then run.** What happens to the softmax rows of step 2 if you divide
#    `scale` by 10? Predict, change the cell, run it.
# 2. **9.2.1 `recall_at_k`** (checked): on a rectangular score matrix (queries x candidates), where
#    ranking along the wrong axis cannot pass unnoticed.
# 3. **9.2.2 `zero_shot_classify`** (checked): prompt ensembling; then compare it with a single prompt
#    per class on the held-out scenes, as step 3 does.
# 4. **9.2.3 `contrastive_loss`** (checked): the symmetric InfoNCE loss with a temperature, checked
#    against `chapter09.training.clip_contrastive_loss`.
# 5. **Explore.** Query the gallery with "a small red circle at the top left". Does the top hit
#    change? Why?
#
# ## Self-check
# **1. Recall@1 is near 1 text -> image. Can image -> text be lower on the same matrix?**
# <details><summary>Answer</summary>
# Yes. Text -> image ranks each row (a caption against every image), image -> text each
# column. An image can have a caption that wins its row while another image's caption beats
# it in its own column. That is why retrieval is reported both ways.
# </details>
#
# **2. Why does `logit_scale` matter if the ranking is the same at any scale?**
# <details><summary>Answer</summary>
# Ranking, and so recall, ignores any positive scale. Training does not: the softmax of
# cosines between -1 and 1 is nearly flat, so the loss barely separates right from wrong; a
# learnt scale (up to 100) sharpens it (compare the two losses printed in step 2).
# </details>
#
# **3. Why average several prompts per class?**
# <details><summary>Answer</summary>
# One wording carries its own bias ("a photo of a ..."), and a class name alone says nothing
# of the rest of the picture; the mean of many prompts' directions, over wordings and over
# what the class does not decide (here colour, size and place), is closer to the class itself. The CLIP paper reports that ensembling 80
# prompts raised zero-shot ImageNet accuracy by about 3.5 points over a single default prompt
# (section 3.1.4); the toy comparison in step 3 is this run's own measurement.
# </details>
#
# ## Further reading
# * Radford et al., CLIP (arXiv 2103.00020): section 2.3 and figure 3 for the loss in
#   pseudocode, section 3.1.4 for prompt engineering and ensembling.
# * van den Oord et al., *Representation Learning with Contrastive Predictive Coding*
#   (arXiv 1807.03748): where the InfoNCE loss comes from.
# * Zhai et al., *LiT: Zero-Shot Transfer with Locked-image text Tuning* (arXiv 2111.07991):
#   the same loss with a frozen, pretrained image tower.
# * Yuksekgonul et al., *When and why vision-language models behave like bags-of-words*
#   (ARO, arXiv 2210.01936), and Thrush et al., *Winoground* (arXiv 2204.03162): benchmarks
#   of attribute binding and word order like the toy world's hard split.

# %% [markdown] lang="zh"
# ## 练习
# `python -m chapter09.exercises start 9.2`，在 `my_exercises/ex9_2.py` 里补全函数，再运行 `python -m chapter09.exercises check 9.2`。
#
# 1. **先预测，再运行。** 把第 2 步的 `scale` 除以 10，softmax 的各行会变成什么样？先预测，再改单元格运行。
# 2. **9.2.1 `recall_at_k`**（自动检查）：在长方形的得分矩阵（查询 x 候选）上计算，沿错误的轴排序就蒙混不过去。
# 3. **9.2.2 `zero_shot_classify`**（自动检查）：提示词集成；然后像第 3 步那样，在留出场景上与每类一条提示词的做法比一比。
# 4. **9.2.3 `contrastive_loss`**（自动检查）：带温度系数的对称 InfoNCE 损失，以 `chapter09.training.clip_contrastive_loss` 为准检查。
# 5. **探索。** 用 "a small red circle at the top left" 查询图库。排第一的结果变了吗？为什么？
#
# ## 自测
# **1. 文本 -> 图像的 Recall@1 接近 1。在同一个矩阵上，图像 -> 文本可能更低吗？**
# <details><summary>答案</summary>
# 可能。文本 -> 图像对每一行排序（一条描述对所有图像），图像 -> 文本则对每一列排序。某张图像的描述可以在自己那一行胜出，而在这张图像那一列里，却有别的图像的描述得分更高。所以检索结果要报告两个方向。
# </details>
#
# **2. 既然乘上任何正数排名都不变，`logit_scale` 为什么还重要？**
# <details><summary>答案</summary>
# 排名（因而召回率）不受任何正的缩放系数影响，训练却不然：对 -1 到 1 之间的余弦值做 softmax，结果几乎是平的，损失很难把对的和错的拉开；学到的缩放系数（最大 100）让分布变得尖锐（对比第 2 步打印的两个损失）。
# </details>
#
# **3. 为什么每个类别要平均多条提示词？**
# <details><summary>答案</summary>
# 单一措辞自带偏差（"a photo of a ..."），而光有类别名，画面里的其他内容一概不提；对许多条提示词的方向取平均，覆盖不同措辞，也覆盖类别本身不决定的属性（这里是颜色、大小和位置），得到的方向更接近类别本身。CLIP 论文报告，集成 80 条提示词比单条默认提示词把 ImageNet 零样本准确率提高了约 3.5 个百分点（3.1.4 节）；第 3 步在玩具世界上的比较，则是本次运行自己测出来的。
# </details>
#
# ## 延伸阅读
# * Radford et al., CLIP (arXiv 2103.00020)：看 2.3 节和图 3 里损失函数的伪代码，以及 3.1.4 节的提示工程与提示词集成。
# * van den Oord et al., *Representation Learning with Contrastive Predictive Coding* (arXiv 1807.03748)：InfoNCE 损失的出处。
# * Zhai et al., *LiT: Zero-Shot Transfer with Locked-image text Tuning* (arXiv 2111.07991)：同样的损失，只是图像塔换成冻结的预训练模型。
# * Yuksekgonul et al., *When and why vision-language models behave like bags-of-words* (ARO, arXiv 2210.01936) 与 Thrush et al., *Winoground* (arXiv 2204.03162)：考查属性绑定和词序的基准，思路与玩具世界的困难划分相同。
#
# **术语对照**
# * 相似度矩阵 / similarity matrix；余弦相似度 / cosine similarity；单位向量 / unit vector
# * 对比损失 / contrastive loss（InfoNCE）；温度系数 / temperature（`logit_scale`）；交叉熵 / cross-entropy
# * 零样本分类 / zero-shot classification；提示词模板 / prompt template；提示词集成 / prompt ensembling
# * 召回率 / recall（R@1、R@5）；图库 / gallery；查询 / query；留出集 / held-out
# * 困难划分 / hard split；属性绑定 / attribute binding；绑定互换 / binding swap；位置互换 / position swap；词袋 / bag of words
# * 标准误 / standard error；配对 bootstrap / paired bootstrap；孪生模型 / toy twin

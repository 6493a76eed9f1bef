"""9.2 Similarity matrix: many images against many captions, zero-shot classification, top-k retrieval."""
# %% [markdown]
# # 9.2 The similarity matrix
# Encode N images and M captions once, multiply the two matrices, and every
# image-caption score appears at once. The same matrix gives zero-shot
# classification (captions are class prompts) and retrieval in both directions.

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

lesson = start("9.2", "Similarity matrix")
encoder = clip_encoder(lesson)

# %% [markdown]
# ## 1. N images x M captions
# Six held-out scenes and their captions. Row i is image i and column j is caption j, so a
# good model puts the highest score of each row on the diagonal. Captions are long, so the
# columns are numbered and the key under the heat-map lists them. The captions are
# English only: this CLIP, like `openai/clip-vit-base-patch32`, learnt from English pairs,
# and 9.1 showed it scores a Chinese caption like an unrelated one (9.3 brings Chinese into
# the same space with a multilingual text encoder).

# %%
scenes = generate_scenes(6, seed=21, split="heldout")
images = [scene.render() for scene in scenes]
captions = [scene.captions("en")[0] for scene in scenes]
image_embeddings = encoder.encode_images(images)
similarity = image_embeddings @ encoder.encode_texts(captions).T

which = "the toy CLIP twin" if encoder.resolved.is_toy else encoder.resolved.spec.hub_id
figure = similarity_figure(images, {"English captions": (captions, similarity)},
                           f"Cosine similarity: images (rows) x captions (columns), {which}")
lesson.save_figure(figure, "similarity_matrix.png")
diagonal_wins = int((similarity.argmax(axis=1) == np.arange(len(images))).sum())
lesson.say(f"{diagonal_wins} of {len(images)} images score highest with their own caption.")
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

# %%
scale = float(encoder.model.logit_scale.detach().exp().clamp(max=100))
logits = scale * similarity  # 6 images x 6 captions
probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
probabilities /= probabilities.sum(axis=1, keepdims=True)  # softmax over each row: image -> which caption?
columns = np.exp(logits - logits.max(axis=0, keepdims=True))
columns /= columns.sum(axis=0, keepdims=True)  # softmax over each column: caption -> which image?
print(f"  exp(logit_scale) = {scale:.1f} (the real CLIP ends training at 100, its cap)")
cool = np.exp(similarity) / np.exp(similarity).sum(axis=1, keepdims=True)  # the same rows at a scale of 1
figure = probability_heatmaps(
    {f"image -> caption, scale {scale:.0f}\n(row i: image i, columns: captions)": probabilities,
     f"caption -> image, scale {scale:.0f}\n(column j: caption j, rows: images)": columns,
     "image -> caption at scale 1\n温度过高：概率几乎平均": cool},
    "9.2 softmax of the similarity matrix: the diagonal is CLIP's training target")
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
    because cosines between -1 and 1 are too close together for a confident softmax.""")
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
    print(f"  [en] shape, {label:<13}: {hits[label].mean():.3f} on {len(test_scenes)} held-out images "
          f"({len(prompts['circle'])} prompt{'s' if len(prompts['circle']) > 1 else ''} per class, "
          f"e.g. {prompts['circle'][0]!r})")
    lesson.record(**{f"zero_shot_shape_en_{label.replace(' ', '_')}": float(hits[label].mean())})
same = classify(test_embeddings, ensemble_prompts("shape")) == \
    zero_shot_classify(encoder, test_embeddings, ensemble_prompts("shape"))[0]
print(f"  written-out classifier agrees with retrieval.zero_shot_classify on every image: {same}")
margin = accuracy_margin(hits["ensemble"], hits["single prompt"])
lesson.record(ensembling_margin=margin)
lesson.say(f"""Ensembling adds {100 * margin['margin']:+.1f} points, with a standard error of
    {100 * margin['standard_error']:.1f} points (a paired bootstrap over the {margin['items']} images): the margin
    is {margin['standard_errors_from_zero']:.1f} standard errors from zero. {margin['only_hits']} images
    only the ensemble gets right, {margin['only_baseline']} only the single prompt. The CLIP paper measured
    +3.5 points on ImageNet from its 80 templates (and almost 5 with prompt engineering on top).""")

# %% [markdown]
# Compare the margin with its standard error before believing it: on a few dozen images a
# gain of this size would be invisible. The same ensemble, over shapes, sizes and places,
# names colours:

# %%
predicted, _names, _probs = zero_shot_classify(encoder, test_embeddings, ensemble_prompts("colour"))
colour_accuracy = float(np.mean([p == s.objects[0].colour for p, s in zip(predicted, test_scenes)]))
print(f"  [en] colour accuracy {colour_accuracy:.3f} on {len(test_scenes)} held-out images "
      f"({len(ensemble_prompts('colour')['red'])} prompts per class)")
lesson.record(zero_shot_colour_en=colour_accuracy, zero_shot_shape_en=float(hits["ensemble"].mean()))

# %% [markdown]
# The same idea on real photos, with everyday class names. The real CLIP was trained for
# this: the CLIP paper reports 63.2 % zero-shot top-1 accuracy on ImageNet's 1000 classes
# for ViT-B/32 (arXiv 2103.00020), so expect most of these nine photos to be labelled
# right with real weights (not measured here). The toy CLIP has only ever seen coloured
# shapes, so its guesses here are noise: zero-shot only reaches as far as the training data.

# %%
photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))
photo_embeddings = encoder.encode_images([load_image(config.ASSETS_DIR / p["image"]) for p in photos])
classes = {p["caption_en"]: [f"a photo of {p['caption_en']}"] for p in photos}
predicted, _names, _probs = zero_shot_classify(encoder, photo_embeddings, classes)
correct = sum(guess == p["caption_en"] for guess, p in zip(predicted, photos))
print(f"  [en] real photos: {correct}/{len(photos)} correct (chance: 1 in {len(photos)})"
      + ("  (toy model: expected to be near chance)" if encoder.resolved.is_toy else ""))
lesson.record(photo_zero_shot_en=correct / len(photos))

# %% [markdown]
# ## 4. Top-k retrieval, both ways
# Text to image: rank a gallery by similarity to the query. Image to text: rank
# captions for an image. Recall@k is the share of queries whose answer is in the top k.
# Written out it is two lines: rank each row, and ask whether the right column is among
# the first k. The library's `recall_at_k` (which also accepts several right answers per
# query) must agree.

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
print(f"  recall written out: {by_hand}; retrieval.recall_at_k: {text_to_image}")
lesson.say(f"""Gallery of {len(gallery)} held-out scenes. Text -> image: R@1 {text_to_image['R@1']:.3f},
    R@5 {text_to_image['R@5']:.3f}. Image -> text: R@1 {image_to_text['R@1']:.3f}, R@5 {image_to_text['R@5']:.3f}.""")
best = top_k(encoder.encode_texts(["a red circle"]) @ gallery_embeddings.T, 3)[0]
print("  query 'a red circle': top 3 = " + "; ".join(gallery[i].short_caption("en") for i in best))
lesson.record(text_to_image=text_to_image, image_to_text=image_to_text)

# %% [markdown]
# Recall is high with full captions, and yet a short query can put a near miss first. The
# recall above used each scene's full caption (sizes, colours, shapes and places of every object); a query such as
# "a red circle" says much less, matches every scene with a red circle in it equally well,
# and leaves the ranking to small differences, where neighbouring colours (red, orange) and
# similar shapes lie close in the embedding space:

# %%
red, orange, red_square = encoder.encode_texts(["a red circle", "an orange circle", "a red square"])
print(f"  cosine('a red circle', 'an orange circle') = {float(red @ orange):.3f}; "
      f"cosine('a red circle', 'a red square') = {float(red @ red_square):.3f}")
has_red_circle = [any(o.colour == "red" and o.shape == "circle" for o in s.objects) for s in gallery]
print(f"  {sum(has_red_circle)} of {len(gallery)} gallery scenes contain a red circle")

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

# %%
hard = generate_scenes(len(gallery) - len(gallery) % 3, seed=23, split="hard")
hard_embeddings = encoder.encode_images([s.render() for s in hard])
hard_queries = encoder.encode_texts([s.captions("en")[1] for s in hard])
hard_recall = recall_both_ways(hard_queries, hard_embeddings, list(range(len(hard))), ks=(1, 5))
families = hard_family_accuracy(hard_queries @ hard_embeddings.T)
for name, recall in (("plain held-out", {"text_to_image": text_to_image, "image_to_text": image_to_text}),
                     ("hard", hard_recall)):
    print(f"  {name:<15} gallery of {len(gallery) if name != 'hard' else len(hard)}: text -> image "
          f"R@1 {recall['text_to_image']['R@1']:.3f}  R@5 {recall['text_to_image']['R@5']:.3f};  image -> text "
          f"R@1 {recall['image_to_text']['R@1']:.3f}  R@5 {recall['image_to_text']['R@5']:.3f}")
print(f"  own scene among its family of 3 ({families['families']} families): {families['all']:.3f} "
      f"(binding swap {families['binding']:.3f}, position swap {families['position']:.3f}, base {families['base']:.3f}; "
      f"chance {families['chance']:.3f})")
lesson.record(hard_text_to_image=hard_recall["text_to_image"], hard_image_to_text=hard_recall["image_to_text"],
              hard_family_accuracy=families)
lesson.say(f"""The same model, the same kind of captions: text -> image R@1 falls from
    {text_to_image['R@1']:.3f} to {hard_recall['text_to_image']['R@1']:.3f} when the gallery holds scenes described
    by the same words. Within a family the caption finds its own scene {families['all']:.3f} of the time: far above
    the {families['chance']:.3f} of a pure bag of words, so this CLIP does use word order, yet {1 - families['all']:.1%}
    of the captions prefer a scene described by the same words in another order.""")

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

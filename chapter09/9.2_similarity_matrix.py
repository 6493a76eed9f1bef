"""9.2 Similarity matrix: many images against many captions, zero-shot classification, top-k retrieval."""
# %% [markdown]
# # 9.2 The similarity matrix
# Encode N images and M captions once, multiply the two matrices, and every
# image-caption score appears at once. The same matrix gives zero-shot
# classification (captions are class prompts) and retrieval in both directions.

# %%
import json

import numpy as np

from chapter09 import config
from chapter09.figures import similarity_figure
from chapter09.images import load_image
from chapter09.lesson import clip_encoder, start
from chapter09.retrieval import recall_at_k, top_k, zero_shot_classify
from chapter09.toyworld import generate_scenes
from chapter09.toyworld.eval import zero_shot_prompts

lesson = start("9.2", "Similarity matrix")
encoder = clip_encoder(lesson)

# %% [markdown]
# ## 1. N images x M captions
# Six held-out scenes, each with its English and its Chinese caption. Row i is image i and
# column j is caption j, so a good model puts the highest score of each row on the
# diagonal. Captions are long, so the columns are numbered and the key under the
# heat-maps lists them. The toy CLIP learned from captions in both languages; the real
# CLIP learned from English ones, so expect its Chinese panel to be much weaker (9.3 adds
# a multilingual text encoder for that).

# %%
scenes = generate_scenes(6, seed=21, split="heldout")
images = [scene.render() for scene in scenes]
captions = [scene.captions("en")[0] for scene in scenes]
captions_zh = [scene.captions("zh")[0] for scene in scenes]
image_embeddings = encoder.encode_images(images)
similarity = image_embeddings @ encoder.encode_texts(captions).T
similarity_zh = image_embeddings @ encoder.encode_texts(captions_zh).T

which = "the toy CLIP twin" if encoder.resolved.is_toy else encoder.resolved.spec.hub_id
figure = similarity_figure(images, {"English captions": (captions, similarity),
                                    "Chinese captions 中文描述": (captions_zh, similarity_zh)},
                           f"Cosine similarity: images (rows) x captions (columns), {which}")
lesson.save_figure(figure, "similarity_matrix.png")
diagonal_wins = int((similarity.argmax(axis=1) == np.arange(len(images))).sum())
diagonal_wins_zh = int((similarity_zh.argmax(axis=1) == np.arange(len(images))).sum())
lesson.say(f"""{diagonal_wins} of {len(images)} images score highest with their own English caption,
    {diagonal_wins_zh} with their own Chinese one.""")
lesson.record(similarity_matrix=similarity.round(3).tolist(), diagonal_wins=diagonal_wins,
              similarity_matrix_zh=similarity_zh.round(3).tolist(), diagonal_wins_zh=diagonal_wins_zh)

# %% [markdown]
# ## 2. Zero-shot classification with prompt templates
# To classify without training, write one prompt per class and pick the most similar.
# Averaging the embeddings of several prompts per class (prompt ensembling) makes the
# classifier steadier. It works the same in Chinese: only the prompts change.

# %%
test_scenes = [s for s in generate_scenes(300, seed=22, split="heldout") if len(s.objects) == 1]
test_embeddings = encoder.encode_images([s.render() for s in test_scenes])
for lang in ("en", "zh"):
    for attribute in ("colour", "shape"):
        prompts = zero_shot_prompts(attribute, lang)
        predicted, _names, _probs = zero_shot_classify(encoder, test_embeddings, prompts)
        truth = [getattr(s.objects[0], attribute) for s in test_scenes]
        accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
        example = next(iter(prompts.values()))[:2]
        print(f"  [{lang}] {attribute:<6} accuracy {accuracy:.3f} on {len(test_scenes)} held-out images "
              f"(prompts like {example})")
        lesson.record(**{f"zero_shot_{attribute}_{lang}": accuracy})

# %% [markdown]
# The same idea on real photos, with everyday class names. With the real CLIP the right
# label wins; the toy CLIP has only ever seen coloured shapes, so its guesses here are
# noise — a reminder that zero-shot only reaches as far as the training data.

# %%
photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))
photo_embeddings = encoder.encode_images([load_image(config.ASSETS_DIR / p["image"]) for p in photos])
for lang, template in (("en", "a photo of {}"), ("zh", "一张{}的照片")):
    classes = {p[f"caption_{lang}"]: [template.format(p[f"caption_{lang}"])] for p in photos}
    predicted, _names, _probs = zero_shot_classify(encoder, photo_embeddings, classes)
    correct = sum(guess == p[f"caption_{lang}"] for guess, p in zip(predicted, photos))
    print(f"  [{lang}] real photos: {correct}/{len(photos)} correct"
          + ("  (toy model: expected to be near chance)" if encoder.resolved.is_toy else ""))
    lesson.record(**{f"photo_zero_shot_{lang}": correct / len(photos)})

# %% [markdown]
# ## 3. Top-k retrieval, both ways
# Text to image: rank a gallery by similarity to the query. Image to text: rank
# captions for an image. Recall@k is the share of queries whose answer is in the top k.

# %%
gallery = generate_scenes(200, seed=23, split="heldout")
gallery_embeddings = encoder.encode_images([s.render() for s in gallery])
query_texts = [s.captions("en")[1] for s in gallery]
query_embeddings = encoder.encode_texts(query_texts)
scores = query_embeddings @ gallery_embeddings.T
text_to_image = recall_at_k(scores, list(range(len(gallery))), ks=(1, 5))
image_to_text = recall_at_k(scores.T, list(range(len(gallery))), ks=(1, 5))
lesson.say(f"""Gallery of {len(gallery)} held-out scenes. Text -> image: R@1 {text_to_image['R@1']:.3f},
    R@5 {text_to_image['R@5']:.3f}. Image -> text: R@1 {image_to_text['R@1']:.3f}, R@5 {image_to_text['R@5']:.3f}.""")
for label, text in (("English", "a red circle"), ("Chinese", "红色圆形")):
    best = top_k(encoder.encode_texts([text]) @ gallery_embeddings.T, 3)[0]
    print(f"  {label} query {text!r}: top 3 = " + "; ".join(gallery[i].short_caption("en") for i in best))
lesson.record(text_to_image=text_to_image, image_to_text=image_to_text)
lesson.finish()

"""9.3 sentence-transformers CLIP: one encode() for images and text, and Chinese queries."""
# %% [markdown]
# # 9.3 CLIP through sentence-transformers
# sentence-transformers wraps CLIP behind one call: `model.encode(...)` takes a list of
# sentences *or* a list of images and returns vectors in the same space, batched.
# Its `util` module then does the search. A second, multilingual text encoder,
# distilled into CLIP's space, lets Chinese queries search the same image vectors.

# %%
import time

from sentence_transformers import SentenceTransformer, util

from chapter09.lesson import start
from chapter09.models import announce, pick_device, resolve
from chapter09.retrieval import recall_at_k
from chapter09.toyworld import generate_scenes

lesson = start("9.3", "sentence-transformers CLIP")
device = pick_device(lesson.settings.device)
clip_model = resolve("sbert_clip", lesson.settings)
announce(clip_model)
model = SentenceTransformer(clip_model.location, device=device)

# %% [markdown]
# ## 1. One interface for images and text
# The same `encode` call handles both; it batches internally (`batch_size`), so pass
# the whole list rather than looping over items.

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
    work one image at a time would take about {loop_s:.2f} s ({loop_s / batched_s:.1f}x slower).""")
lesson.record(images_per_s_batched=len(images) / batched_s, images_per_s_loop=len(images) / loop_s)

# %% [markdown]
# ## 2. Search with `util.semantic_search` and `util.cos_sim`

# %%
queries = ["a red circle", "a small blue star at the top left", "a large green diamond in the center"]
query_embeddings = model.encode(queries, convert_to_tensor=True)
for query, hits in zip(queries, util.semantic_search(query_embeddings, image_embeddings, top_k=3)):
    found = "; ".join(f"{gallery[h['corpus_id']].short_caption('en')} ({h['score']:.2f})" for h in hits)
    print(f"  {query!r:<40} -> {found}")
print(f"  cos_sim matrix for the queries x first 4 images:\n{util.cos_sim(query_embeddings, image_embeddings[:4])}")

# %% [markdown]
# ## 3. Chinese queries through a multilingual text encoder
# `clip-ViT-B-32-multilingual-v1` is a text-only model trained to put a sentence in any of
# 50+ languages where CLIP puts its English version. Images stay encoded by CLIP;
# only the query encoder changes.

# %%
multilingual = resolve("multilingual_text", lesson.settings)
announce(multilingual)
text_model = SentenceTransformer(multilingual.location, device=device)
report = {}
for lang, encoder_name, encoder in (("en", "CLIP text tower", model), ("en", "multilingual", text_model),
                                    ("zh", "multilingual", text_model)):
    queries = [scene.captions(lang)[0] for scene in gallery]
    scores = util.cos_sim(encoder.encode(queries, convert_to_tensor=True), image_embeddings).cpu().numpy()
    recall = recall_at_k(scores, list(range(len(gallery))), ks=(1, 5))
    report[f"{lang}_{encoder_name.replace(' ', '_')}"] = recall
    print(f"  [{lang}] {encoder_name:<16} text -> image over {len(gallery)} images: "
          f"R@1 {recall['R@1']:.3f}  R@5 {recall['R@5']:.3f}")
for query in ("红色圆形", "左上方有一个小的蓝色星形"):
    hits = util.semantic_search(text_model.encode([query], convert_to_tensor=True), image_embeddings, top_k=3)[0]
    print(f"  {query} -> " + "; ".join(gallery[h["corpus_id"]].short_caption("zh") for h in hits))
lesson.record(recall=report)
lesson.finish()

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
    work one image at a time would take about {loop_s:.2f} s ({loop_s / batched_s:.1f}x slower).
    {'(128 numbers per vector in the toy CLIP; clip-ViT-B-32 gives 512.)' if clip_model.is_toy else ''}""")
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
# Look at the third query: the best hit may be a diamond of another colour, in another
# place. Each gallery scene holds one to three objects and its caption names all of them;
# a one-object query asks for a scene that contains *one* of them, which is not what the
# toy CLIP was trained to score (a whole caption against a whole scene). Which of the
# three queries found a scene that really contains what they ask for?

# %%
for query, hits in zip(queries, util.semantic_search(query_embeddings, image_embeddings, top_k=3)):
    words = query.split()
    found = [any(o.colour in words and o.shape in words for o in gallery[h["corpus_id"]].objects) for h in hits]
    print(f"  {query!r:<40} do the top 3 hold an object of that colour and shape? {found}")

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

# %%
multilingual = resolve("multilingual_text", lesson.settings)
announce(multilingual)
text_model = SentenceTransformer(multilingual.location, device=device)
query = "红色圆形"
for name, tokenizer in (("CLIP", model.tokenizer), ("multilingual", text_model.tokenizer)):
    pieces = tokenizer.tokenize(query)
    print(f"  {name:<13} tokenizer: {query} -> {len(pieces)} tokens {pieces}")
report = {}
for lang, encoder_name, encoder in (("en", "CLIP text tower", model), ("zh", "CLIP text tower", model),
                                    ("en", "multilingual", text_model), ("zh", "multilingual", text_model)):
    queries = [scene.captions(lang)[0] for scene in gallery]
    scores = util.cos_sim(encoder.encode(queries, convert_to_tensor=True), image_embeddings).cpu().numpy()
    recall = recall_at_k(scores, list(range(len(gallery))), ks=(1, 5))
    report[f"{lang}_{encoder_name.replace(' ', '_')}"] = recall
    print(f"  [{lang}] {encoder_name:<16} text -> image over {len(gallery)} images: "
          f"R@1 {recall['R@1']:.3f}  R@5 {recall['R@5']:.3f}")
print(f"  chance over {len(gallery)} images: R@1 {1 / len(gallery):.3f}  R@5 {5 / len(gallery):.3f}")
for query in ("红色圆形", "左上方有一个小的蓝色星形"):
    for name, encoder in (("CLIP text tower", model), ("multilingual", text_model)):
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

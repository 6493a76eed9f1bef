"""9.1 CLIP basics: tokens, pixels, embeddings and cosine similarity."""
# %% [markdown]
# # 9.1 CLIP basics
# CLIP turns an image and a sentence into two vectors in one space, so that a photo and
# its caption point the same way. This lesson walks one image and a few captions
# through every step: tokenization, image preprocessing, the two encoders,
# normalisation and cosine similarity.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from chapter09 import config
from chapter09.clip import (
    REFERENCE_CLIP,
    REFERENCE_CLIP_SHAPES,
    REFERENCE_CLIP_SPECIAL_IDS,
    ClipShapes,
    end_of_text_positions,
)
from chapter09.figures import patch_grid_figure
from chapter09.images import load_image, to_rgb
from chapter09.lesson import clip_encoder, start
from chapter09.retrieval import cosine_similarity
from chapter09.toyworld import generate_scenes

lesson = start("9.1", "CLIP basics")
encoder = clip_encoder(lesson)  # prints which CLIP is in use: real, or the toy twin
tokenizer = encoder.processor.tokenizer
model = encoder.torch_model  # the transformers CLIPModel: its two towers and projections are opened below
shapes = ClipShapes.of(model.config)

# %% [markdown]
# ## 1. Tokenization
# The text encoder never sees letters: the tokenizer cuts text into pieces from a fixed
# vocabulary and maps each to an id. CLIP wraps every sentence in a start and an end
# token. Its tokenizer is a byte-level BPE (Sennrich et al.): text is first written as
# UTF-8 bytes, and pieces that were frequent in the training text are merged into one
# token. OpenAI learnt its merges on English web text, and the toy CLIP's were learnt on
# the toy world's English captions, so an English word is one token while a Chinese
# character, three UTF-8 bytes, stays in byte pieces that mean nothing to the model.

# %%
scene = generate_scenes(1, seed=7, split="heldout")[0]
captions = [scene.captions("en")[0], scene.captions("zh")[0]]
for caption in captions:
    ids = tokenizer(caption)["input_ids"]
    lesson.say(f"{caption!r} ({len(caption)} characters) becomes {len(ids)} tokens:")
    print("  " + " | ".join(f"{piece}:{i}" for piece, i in zip(tokenizer.convert_ids_to_tokens(ids), ids)))
for character in captions[1][:3]:
    print(f"  {character} = UTF-8 bytes {character.encode('utf-8').hex(' ')} -> tokens {tokenizer.tokenize(character)}")
print(f"\n  vocabulary: {len(tokenizer)} entries; start id {tokenizer.bos_token_id}, end id {tokenizer.eos_token_id}"
      f" ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.vocab_size:,}, {', '.join(map(str, REFERENCE_CLIP_SPECIAL_IDS))})")
lesson.record(tokens_en=len(tokenizer(captions[0])["input_ids"]), tokens_zh=len(tokenizer(captions[1])["input_ids"]),
              vocabulary_size=len(tokenizer))

# %% [markdown]
# The byte pieces print as odd letters because a byte-level BPE writes each of the 256
# bytes as a printable character. OpenAI's BPE learnt a few merges of Chinese bytes from
# its web text: the Chinese caption above is 64 tokens plus start and end with its file
# (as shipped in `open-clip-torch` 3.3.0; `tests/test_real_tokenizers.py` checks the
# chapter's real ids), not one token per character either.
#
# A batch needs one rectangle of ids, so shorter sentences are padded on the right and an
# *attention mask* marks which positions are real (1) and which are padding (0):

# %%
batch = tokenizer([captions[0], "a red star"], padding=True, return_tensors="pt")
print(f"  padded batch: input_ids {tuple(batch['input_ids'].shape)}, attention_mask row 2 = "
      f"{batch['attention_mask'][1].tolist()}")

# %% [markdown]
# ### Inside the text tower: causal attention, read at the end-of-text token
# CLIP's text encoder is a transformer with a *causal* mask, as in GPT: position i attends
# to itself and the positions before it, never to those after (1 = may attend):

# %%
short = tokenizer(["a red star"], return_tensors="pt")["input_ids"]
print(f"  causal mask of {tokenizer.convert_ids_to_tokens(short[0])}:")
print("\n".join("    " + " ".join(map(str, row)) for row in np.tril(np.ones((short.shape[1],) * 2, dtype=int))))

# %% [markdown]
# The sentence's vector is not an average over the tokens: it is the last layer's state at
# the end-of-text token (after the final layer norm), the one position that has attended to
# the whole sentence. transformers finds that position from the ids (`eos_token_id`); here
# it is checked against the model's `pooler_output`:

# %%
with torch.inference_mode():
    text_out = model.text_model(**batch)
ends = end_of_text_positions(batch["input_ids"], model.config.text_config.eos_token_id)
rows = torch.arange(len(ends))
read_at_end = text_out.last_hidden_state[rows, ends]
print(f"  last_hidden_state {tuple(text_out.last_hidden_state.shape)}: batch, tokens, width {shapes.text_width} "
      f"({REFERENCE_CLIP}: width {REFERENCE_CLIP_SHAPES.text_width}, {REFERENCE_CLIP_SHAPES.context_length} tokens at most)")
print(f"  end-of-text positions {ends.tolist()}; pooler_output equals the state there: "
      f"{torch.allclose(read_at_end, text_out.pooler_output)}")

# %% [markdown]
# So padding, which comes after the end-of-text token, cannot reach the sentence's vector:
# the causal mask already hides every later position from it. The attention mask is not
# what protects it. Three ways to see it on the padded sentence (row 2): give the model an
# attention mask of all ones, so padding counts as text; replace the padding by random
# tokens; and encode the sentence alone, with no padding at all.

# %%
def sentence_vectors(input_ids, attention_mask):
    with torch.inference_mode():
        pooled = model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    return pooled.float().numpy()


padded = batch["attention_mask"] == 0
alone = tokenizer(["a red star"], return_tensors="pt")
random_ids = torch.randint(0, len(tokenizer), batch["input_ids"].shape, generator=torch.Generator().manual_seed(0))
random_ids[torch.isin(random_ids, torch.tensor(tokenizer.all_special_ids))] = batch["input_ids"][0, 1]  # no specials
noise_after_end = torch.where(padded, random_ids, batch["input_ids"])
variants = {"attention mask of all ones": (batch["input_ids"], torch.ones_like(batch["attention_mask"])),
            "random tokens after the end, all ones": (noise_after_end, torch.ones_like(batch["attention_mask"])),
            "alone, no padding": (alone["input_ids"], alone["attention_mask"])}
normal = sentence_vectors(batch["input_ids"], batch["attention_mask"])[1:2]
mask_cosines = {}
for name, (input_ids, attention_mask) in variants.items():
    mask_cosines[name] = float(cosine_similarity(normal, sentence_vectors(input_ids, attention_mask)[-1:])[0, 0])
    print(f"  cosine(padded with its mask, {name}) = {mask_cosines[name]:.8f}")
blue = tokenizer(["a blue star"], return_tensors="pt")
before_end = cosine_similarity(normal, sentence_vectors(blue["input_ids"], blue["attention_mask"]))
print(f"  whereas one word before the end changes it: cosine('a red star', 'a blue star') = {float(before_end[0, 0]):.4f}")
lesson.record(mask_cosines=mask_cosines)

# %% [markdown]
# Up to float rounding, the vector is the same in all four cases: what comes after the
# end-of-text token never reaches it. The mask does matter for encoders that read in both
# directions, such as BERT (the text towers of Chinese-CLIP and of 9.3's multilingual
# encoder), where every token attends to the padding unless the mask hides it, and for
# padding on the left, which would come before the end token.

# %% [markdown]
# ## 2. Image preprocessing
# Whatever its size or mode, an image is converted to RGB, resized so its short side
# fits the model, centre-cropped to a square and normalised with the training set's
# per-channel mean and standard deviation.

# %%
photo = load_image(config.ASSETS_DIR / "photos" / "puppy.jpg")
toy_image = scene.render()
pixel_values = encoder.processor(images=[photo, toy_image], return_tensors="pt")["pixel_values"]
mean = np.array(encoder.processor.image_processor.image_mean).reshape(3, 1, 1)
std = np.array(encoder.processor.image_processor.image_std).reshape(3, 1, 1)
side = pixel_values.shape[-1]
lesson.say(f"""The processor turns a {photo.size[0]}x{photo.size[1]} photo and a {toy_image.size[0]}x{toy_image.size[1]}
    scene into a tensor of shape {tuple(pixel_values.shape)}: batch, channels, height, width
    ({side} px is this CLIP's input; {REFERENCE_CLIP} takes {REFERENCE_CLIP_SHAPES.image_size} x
    {REFERENCE_CLIP_SHAPES.image_size}). Normalisation subtracts the
    mean and divides by the standard deviation of CLIP's *training photos* (per channel), so values sit
    near zero only for images as bright as those: here the photo has mean {pixel_values[0].mean():.2f}
    (std {pixel_values[0].std():.2f}) and the toy scene, mostly white background, mean
    {pixel_values[1].mean():.2f} (std {pixel_values[1].std():.2f}).""")

figure, axes = plt.subplots(2, 3, figsize=(9, 6))
for row, (original, tensor) in enumerate(zip([photo, toy_image], pixel_values)):
    restored = np.clip(tensor.float().numpy() * std + mean, 0, 1).transpose(1, 2, 0)
    axes[row, 0].imshow(original)
    axes[row, 0].set_title(f"original {original.size[0]}x{original.size[1]}")
    axes[row, 1].imshow(restored)
    axes[row, 1].set_title(f"model input {restored.shape[1]}x{restored.shape[0]}")
    axes[row, 2].hist(tensor.float().numpy().reshape(3, -1).T, bins=40, color=["r", "g", "b"], alpha=0.6)
    axes[row, 2].set_title("normalised values (R, G, B)")
    for axis in axes[row, :2]:
        axis.axis("off")
figure.suptitle("What the image encoder actually sees")
figure.tight_layout()  # titles clear of the tick labels above them
lesson.save_figure(figure, "preprocessing.png")

# %% [markdown]
# Images come in many modes: greyscale, palette, with transparency. Feeding them
# unconverted breaks the 3-channel model, so every image goes through `to_rgb` first.

# %%
for mode in ("L", "P", "RGBA", "CMYK"):
    converted = to_rgb(photo.convert(mode))
    print(f"  mode {mode:<5} -> {converted.mode} {converted.size}")

# %% [markdown]
# ### Inside the image tower: patches and the CLS token
# A vision transformer (ViT) reads an image as a sentence of patches: the input is cut
# into squares of `patch_size` pixels, each flattened and projected to one token, and a
# learnt CLS token is put in front. Unlike the text tower, every token attends to every
# other. The image's vector is the last layer's state at the CLS token (after a layer norm).

# %%
lesson.say(f"""This CLIP cuts its {shapes.image_size} x {shapes.image_size} input into
    {shapes.patch_size}-pixel patches: {shapes.patches_per_side} x {shapes.patches_per_side} =
    {shapes.patches_per_side ** 2} patches + CLS = {shapes.image_tokens} tokens of width {shapes.vision_width}.
    {REFERENCE_CLIP} cuts {REFERENCE_CLIP_SHAPES.image_size} x {REFERENCE_CLIP_SHAPES.image_size} into {REFERENCE_CLIP_SHAPES.patch_size}-pixel patches:
    {REFERENCE_CLIP_SHAPES.patches_per_side} x {REFERENCE_CLIP_SHAPES.patches_per_side} =
    {REFERENCE_CLIP_SHAPES.patches_per_side ** 2} patches + CLS = {REFERENCE_CLIP_SHAPES.image_tokens} tokens of
    width {REFERENCE_CLIP_SHAPES.vision_width} (its config.json; CLIP paper, table 20).""")
with torch.inference_mode():
    image_out = model.vision_model(pixel_values=pixel_values[1:].to(model.dtype))
    cls_state = model.vision_model.post_layernorm(image_out.last_hidden_state[:, 0])
print(f"  last_hidden_state {tuple(image_out.last_hidden_state.shape)}: image, tokens, width; pooler_output is "
      f"the CLS state after the layer norm: {torch.allclose(cls_state, image_out.pooler_output)}")
lesson.record(image_tokens=int(image_out.last_hidden_state.shape[1]), patches_per_side=shapes.patches_per_side)
figure = patch_grid_figure(pixel_values[1].float().numpy() * std + mean, shapes.patch_size,
                           f"the model input cut into {shapes.patches_per_side} x {shapes.patches_per_side} patches "
                           f"of {shapes.patch_size} px: {shapes.image_tokens - 1} tokens + CLS")
lesson.save_figure(figure, "patches.png")

# %% [markdown]
# ## 3. Embeddings and normalisation
# Each tower ends in a linear projection, without bias, from its own width into the shared
# space, where image and text vectors can be compared. The raw vectors have different
# lengths; dividing by the length leaves only the direction, which is what similarity
# compares.

# %%
with torch.inference_mode():
    projected_text = model.text_projection(text_out.pooler_output)
    projected_image = model.visual_projection(image_out.pooler_output)
print(f"  text:  pooled width {shapes.text_width} -> text_projection {tuple(model.text_projection.weight.shape[::-1])} "
      f"-> {projected_text.shape[1]} ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.text_width} -> "
      f"{REFERENCE_CLIP_SHAPES.projection_dim})")
print(f"  image: pooled width {shapes.vision_width} -> visual_projection "
      f"{tuple(model.visual_projection.weight.shape[::-1])} -> {projected_image.shape[1]} ({REFERENCE_CLIP}: "
      f"{REFERENCE_CLIP_SHAPES.vision_width} -> {REFERENCE_CLIP_SHAPES.projection_dim})")
same_as_encoder = np.allclose(projected_image.float().numpy(), encoder.encode_images([toy_image], normalize=False),
                              atol=1e-4)
print(f"  the same vector as encoder.encode_images(normalize=False): {same_as_encoder}")

distractors = [s.captions("en")[0] for s in generate_scenes(3, seed=8, split="heldout")]
texts = [captions[0], captions[1], *distractors]
raw_image = encoder.encode_images([toy_image], normalize=False)
raw_texts = encoder.encode_texts(texts, normalize=False)
lesson.say(f"""Image embedding: {raw_image.shape[1]} numbers ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.projection_dim}),
    length {np.linalg.norm(raw_image):.2f}. Text embeddings: lengths
    {', '.join(f'{n:.2f}' for n in np.linalg.norm(raw_texts, axis=1))}. After normalisation every length is 1.""")
image_unit = raw_image / np.linalg.norm(raw_image, axis=1, keepdims=True)
text_unit = raw_texts / np.linalg.norm(raw_texts, axis=1, keepdims=True)

# %% [markdown]
# ## 4. Cosine similarity
# For unit vectors the cosine similarity is just the dot product. The scene's own English
# caption should score highest. Its Chinese caption describes the same scene, but this CLIP,
# like `openai/clip-vit-base-patch32`, learnt from English captions only: the byte tokens of
# step 1 were never tied to anything in an image, so expect the Chinese caption to score
# like the captions of other scenes, not like its English twin.

# %%
similarity = (image_unit @ text_unit.T)[0]
for text, value in sorted(zip(texts, similarity), key=lambda pair: -pair[1]):
    marker = {captions[0]: "<- the image's caption", captions[1]: "<- the same caption in Chinese"}.get(text, "")
    print(f"  {value:+.3f}  {text}  {marker}")
best = texts[int(similarity.argmax())]
distractor_scores = similarity[2:]
lesson.record(similarity=dict(zip(texts, map(float, similarity))), best_caption=best,
              best_is_correct=best == captions[0], chinese_caption_score=float(similarity[1]),
              english_caption_score=float(similarity[0]), distractor_scores=[float(v) for v in distractor_scores])
lesson.say(f"""Best match: {best!r}. The Chinese caption scores {similarity[1]:+.3f}, against {similarity[0]:+.3f}
    for the English one and {distractor_scores.min():+.3f} to {distractor_scores.max():+.3f} for captions of
    other scenes. A Chinese query needs another way in: a text encoder trained to map Chinese into
    CLIP's space (9.3), a translation into English first, or a CLIP trained on Chinese pairs (the
    capstone compares all of them; its `auto` strategy translates Chinese queries).""")
lesson.finish()

# %% [markdown]
# ## Summary
# * A byte-level BPE tokenizer reads any text, but only the pieces its training text made
#   meaningful: CLIP's English BPE leaves Chinese as byte tokens, and an English-only CLIP
#   scores a Chinese caption like an unrelated one.
# * The text tower is causal and reads the sentence's vector at the end-of-text token, so
#   right padding never reaches it, mask or no mask.
# * The image tower cuts the image into patches plus a CLS token (toy: 8 x 8 + 1 = 65;
#   ViT-B/32 at 224 px: 7 x 7 + 1 = 50) and reads the image's vector at CLS.
# * Each tower's pooled state is projected into one shared space; after L2 normalisation
#   the dot product is the cosine similarity.
# * The image processor converts to RGB, resizes, crops and normalises with the training
#   photos' mean and std.

# %% [markdown]
# ## Exercises
# Start with `python -m chapter09.exercises start 9.1` (it copies a file to fill in to
# `my_exercises/ex9_1.py`), then `python -m chapter09.exercises check 9.1`: the checker
# runs your functions on data you have not seen and says, per exercise, what passed.
#
# 1. **Predict, then run.** Before running step 2 on a photo of your own, predict the sign
#    of its mean after normalisation: a dark photo? a snow scene? Then run it.
# 2. **9.1.1 `l2_normalize`** (checked): unit rows, without NaN for a zero row.
# 3. **9.1.2 `cosine_similarity_matrix`** (checked): every image against every text, from raw embeddings.
# 4. **9.1.3 `pad_batch`** (checked): pad token ids to one rectangle with its attention mask (on the
#    right, as CLIP's tokenizer pads); then explain why the cosines printed in step 1 stay at 1 (up to
#    rounding) even with an all-ones mask, and which kind of text encoder would change if the mask
#    were all ones.
# 5. **9.1.4 `normalize_pixels`** (checked): the last step of CLIP's image processor.
#
# ## Self-check
# **1. Why are embeddings normalised before comparing them?**
# <details><summary>Answer</summary>
# A raw embedding's length varies with the input (the lengths printed in step 3), and a dot
# product of raw vectors rewards length as much as direction. Unit vectors leave only the
# direction, and their dot product is the cosine, between -1 and 1.
# </details>
#
# **2. Why does an English-only CLIP score a Chinese caption like an unrelated one?**
# <details><summary>Answer</summary>
# Its byte-level BPE can write any text, so nothing fails: the caption becomes byte tokens
# (81 plus start and end in the toy vocabulary, 64 plus start and end with OpenAI's BPE for
# the 27-character caption above). But training tied no image to those tokens, so the vector
# at the end-of-text token lands wherever the untrained byte embeddings put it, not near its
# scene. 9.3 maps Chinese into the same space with a multilingual text encoder instead.
# </details>
#
# **3. Padding comes after the end-of-text token. Where would a token have to be to change the
# sentence's vector?**
# <details><summary>Answer</summary>
# At or before the end-of-text token: the causal mask lets that position see only itself and
# what comes before it. Step 1 shows it: random tokens after the end leave the vector at cosine
# 1, one changed word before it ("red" -> "blue") moves it far.
# </details>
#
# **4. Why does the image processor need the training set's mean and std?**
# <details><summary>Answer</summary>
# The encoder's weights were learnt on inputs normalised that way; a different scaling shifts
# every activation. The values are centred on zero only for images like the training photos.
# </details>
#
# ## Further reading
# * Radford et al., *Learning Transferable Visual Models From Natural Language Supervision*
#   (CLIP, arXiv 2103.00020): sections 2.3-2.5 for the two encoders and the training objective.
# * Sennrich et al., *Neural Machine Translation of Rare Words with Subword Units*
#   (arXiv 1508.07909): BPE, the tokenizer CLIP uses.
# * Dosovitskiy et al., *An Image is Worth 16x16 Words* (ViT, arXiv 2010.11929): the image
#   encoder, and why the input is cut into patches.

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

from chapter09 import config
from chapter09.images import load_image, to_rgb
from chapter09.lesson import clip_encoder, start
from chapter09.toyworld import generate_scenes

lesson = start("9.1", "CLIP basics")
encoder = clip_encoder(lesson)  # prints which CLIP is in use: real, or the toy twin
tokenizer = encoder.processor.tokenizer

# %% [markdown]
# ## 1. Tokenization
# The text encoder never sees letters: the tokenizer cuts text into pieces from a fixed
# vocabulary and maps each to an id. CLIP wraps every sentence in a start and an end
# token; the text embedding is read at the end token.
#
# The ids below are the **toy vocabulary's**: learnt on the toy captions, with the start
# and end tokens at 0 and 1 and one token per Chinese character. The real
# `openai/clip-vit-base-patch32` tokenizer has 49,408 entries, start/end ids 49406/49407,
# and a byte-level BPE learnt on English web text, so it splits most Chinese characters
# into several byte pieces: OpenAI's BPE file (as shipped in `open-clip-torch` 3.3.0) turns
# the 27-character Chinese caption below into 64 tokens plus start and end, where the toy
# tokenizer needs 27 (`tests/test_real_tokenizers.py` checks the chapter's real ids).

# %%
scene = generate_scenes(1, seed=7, split="heldout")[0]
captions = [scene.captions("en")[0], scene.captions("zh")[0]]
for caption in captions:
    ids = tokenizer(caption)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    lesson.say(f"{caption!r} becomes {len(ids)} tokens:")
    print("  " + " | ".join(f"{piece}:{i}" for piece, i in zip(pieces, ids)))
print(f"\n  vocabulary: {len(tokenizer)} entries; start id {tokenizer.bos_token_id}, end id {tokenizer.eos_token_id}"
      + (" (the toy vocabulary; the real CLIP: 49,408, 49406, 49407)" if encoder.resolved.is_toy else ""))
lesson.record(tokens_en=len(tokenizer(captions[0])["input_ids"]), tokens_zh=len(tokenizer(captions[1])["input_ids"]),
              vocabulary_size=len(tokenizer))

# %% [markdown]
# A batch needs one rectangle of ids, so shorter sentences are padded and an *attention
# mask* marks which positions are real. The model ignores padded positions, so a
# sentence's embedding is the same alone or in a padded batch (up to rounding):

# %%
alone = encoder.encode_texts([captions[0]])
padded_batch = tokenizer([captions[0], "a red star"], padding=True, return_tensors="pt")
print(f"  padded batch: input_ids {tuple(padded_batch['input_ids'].shape)}, attention_mask row 2 = "
      f"{padded_batch['attention_mask'][1].tolist()}")
in_batch = encoder.encode_texts([captions[0], "a red star"])[:1]
print(f"  cosine(alone, in a padded batch) = {float((alone * in_batch).sum()):.6f}")

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
    ({side} px is the toy CLIP's input; the real ViT-B/32 takes 224 x 224). Normalisation subtracts the
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
# ## 3. Embeddings and normalisation
# Each encoder ends in a projection into the shared space. The raw vectors have
# different lengths; dividing by the length leaves only the direction, which is what
# similarity compares.

# %%
distractors = [s.captions("en")[0] for s in generate_scenes(3, seed=8, split="heldout")]
texts = [captions[0], captions[1], *distractors]
raw_image = encoder.encode_images([toy_image], normalize=False)
raw_texts = encoder.encode_texts(texts, normalize=False)
lesson.say(f"""Image embedding: {raw_image.shape[1]} numbers{' (the toy CLIP; the real ViT-B/32: 512)' if encoder.resolved.is_toy else ''}, length {np.linalg.norm(raw_image):.2f}.
    Text embeddings: lengths {', '.join(f'{n:.2f}' for n in np.linalg.norm(raw_texts, axis=1))}.
    After normalisation every length is 1.""")
image_unit = raw_image / np.linalg.norm(raw_image, axis=1, keepdims=True)
text_unit = raw_texts / np.linalg.norm(raw_texts, axis=1, keepdims=True)

# %% [markdown]
# ## 4. Cosine similarity
# For unit vectors the cosine similarity is just the dot product. The scene's own English
# caption should score highest. The toy CLIP was trained on captions in both languages, so
# its Chinese caption scores high too; the real `openai/clip-vit-base-patch32` learnt from
# English captions, so expect its Chinese score to be much lower (9.2 shows the whole
# Chinese matrix, 9.3 a text encoder that fixes it).

# %%
similarity = (image_unit @ text_unit.T)[0]
for text, value in sorted(zip(texts, similarity), key=lambda pair: -pair[1]):
    marker = "<- the image's caption" if text in captions else ""
    print(f"  {value:+.3f}  {text}  {marker}")
best = texts[int(similarity.argmax())]
lesson.record(similarity=dict(zip(texts, map(float, similarity))), best_caption=best,
              best_is_correct=best in captions)
lesson.say(f"Best match: {best!r}.")
lesson.finish()

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
# 4. **9.1.3 `pad_batch`** (checked): pad token ids to one rectangle with its attention mask; then
#    explain why the cosine printed after the padded batch is 1 (up to rounding) and what would happen
#    if the mask were all ones.
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
# **2. Does the real CLIP read the Chinese caption character by character?**
# <details><summary>Answer</summary>
# No. One token per character is the toy vocabulary. OpenAI's byte-level BPE splits most
# Chinese characters into several byte pieces (64 tokens for the 27-character caption above),
# which is one reason it handles Chinese poorly.
# </details>
#
# **3. Why does the image processor need the training set's mean and std?**
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

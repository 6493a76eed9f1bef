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

# %%
scene = generate_scenes(1, seed=7, split="heldout")[0]
captions = [scene.captions("en")[0], scene.captions("zh")[0]]
for caption in captions:
    ids = tokenizer(caption)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    lesson.say(f"{caption!r} becomes {len(ids)} tokens:")
    print("  " + " | ".join(f"{piece}:{i}" for piece, i in zip(pieces, ids)))
lesson.record(tokens_en=len(tokenizer(captions[0])["input_ids"]), tokens_zh=len(tokenizer(captions[1])["input_ids"]),
              vocabulary_size=len(tokenizer))

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
lesson.say(f"""The processor turns a {photo.size[0]}x{photo.size[1]} photo and a {toy_image.size[0]}x{toy_image.size[1]}
    scene into a tensor of shape {tuple(pixel_values.shape)}: batch, channels, height, width.
    After normalisation the values are centred near zero (mean {pixel_values.mean():.2f}, std {pixel_values.std():.2f}).""")

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
lesson.say(f"""Image embedding: {raw_image.shape[1]} numbers, length {np.linalg.norm(raw_image):.2f}.
    Text embeddings: lengths {', '.join(f'{n:.2f}' for n in np.linalg.norm(raw_texts, axis=1))}.
    After normalisation every length is 1.""")
image_unit = raw_image / np.linalg.norm(raw_image, axis=1, keepdims=True)
text_unit = raw_texts / np.linalg.norm(raw_texts, axis=1, keepdims=True)

# %% [markdown]
# ## 4. Cosine similarity
# For unit vectors the cosine similarity is just the dot product. The scene's own
# captions, English and Chinese, should score highest.

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

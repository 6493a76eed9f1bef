"""9.1 CLIP basics: tokens, pixels, embeddings and cosine similarity."""
# %% [markdown]
# # 9.1 CLIP basics
# CLIP turns an image and a sentence into two vectors in one space, so that a photo and
# its caption point the same way. This lesson walks one image and a few captions
# through every step: tokenization, image preprocessing, the two encoders,
# normalisation and cosine similarity.

# %% [markdown] lang="zh"
# # 9.1 CLIP 基础
# CLIP 把一幅图像和一句话分别变成同一空间里的两个向量，让照片和它的描述指向同一个方向。本节带着一幅图像和几条描述走完全程：分词、图像预处理、两个编码器、归一化和余弦相似度。

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

lesson = start("9.1", "CLIP basics", zh="CLIP 基础")
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

# %% [markdown] lang="zh"
# ## 1. 分词
# 文本编码器从来看不到字母：分词器（tokenizer）把文本切成取自固定词表的片段，再把每个片段映射成一个 id。CLIP 会给每个句子首尾各加一个开始词元和结束词元。它的分词器是字节级 BPE（Sennrich et al.）：先把文本写成 UTF-8 字节，再把训练文本里常见的片段合并成一个词元（token）。OpenAI 的合并规则学自英文网页文本，玩具 CLIP 的则学自玩具世界的英文描述，所以一个英文单词就是一个词元；而一个汉字占三个 UTF-8 字节，只能停留在字节片段上，这些片段对模型毫无意义。

# %%
scene = generate_scenes(1, seed=7, split="heldout")[0]
captions = [scene.captions("en")[0], scene.captions("zh")[0]]
for caption in captions:
    ids = tokenizer(caption)["input_ids"]
    lesson.say(f"{caption!r} ({len(caption)} characters) becomes {len(ids)} tokens:",
               zh=f"{caption!r}（{len(caption)} 个字符）变成 {len(ids)} 个词元：")
    print("  " + " | ".join(f"{piece}:{i}" for piece, i in zip(tokenizer.convert_ids_to_tokens(ids), ids)))
for character in captions[1][:3]:
    print(lesson.t(f"  {character} = UTF-8 bytes {character.encode('utf-8').hex(' ')} -> tokens {tokenizer.tokenize(character)}",
                   f"  {character} = UTF-8 字节 {character.encode('utf-8').hex(' ')} -> 词元 {tokenizer.tokenize(character)}"))
reference_ids = ", ".join(map(str, REFERENCE_CLIP_SPECIAL_IDS))
print(lesson.t(f"\n  vocabulary: {len(tokenizer)} entries; start id {tokenizer.bos_token_id}, end id {tokenizer.eos_token_id}"
               f" ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.vocab_size:,}, {reference_ids})",
               f"\n  词表：{len(tokenizer)} 项；开始词元 id {tokenizer.bos_token_id}，结束词元 id {tokenizer.eos_token_id}"
               f"（{REFERENCE_CLIP}：{REFERENCE_CLIP_SHAPES.vocab_size:,} 项，{reference_ids}）"))
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

# %% [markdown] lang="zh"
# 字节片段打印出来像一串古怪的字母，因为字节级 BPE 把 256 个字节各写成一个可打印字符。OpenAI 的 BPE 从网页文本里学到了少量中文字节的合并：用它的词表文件（`open-clip-torch` 3.3.0 随附的那份；`tests/test_real_tokenizers.py` 会核对本章真实模型的 id），上面那条中文描述是 64 个词元（另加开始和结束词元），仍然远不是一字一词元。
#
# 一批输入要排成一个规整的 id 矩形，所以较短的句子在右侧填充（padding），再用*注意力掩码*（attention mask）标出哪些位置是真实内容（1），哪些是填充（0）：

# %%
batch = tokenizer([captions[0], "a red star"], padding=True, return_tensors="pt")
print(lesson.t(f"  padded batch: input_ids {tuple(batch['input_ids'].shape)}, attention_mask row 2 = "
               f"{batch['attention_mask'][1].tolist()}",
               f"  填充后的批次：input_ids {tuple(batch['input_ids'].shape)}，attention_mask 第 2 行 = "
               f"{batch['attention_mask'][1].tolist()}"))

# %% [markdown]
# ### Inside the text tower: causal attention, read at the end-of-text token
# CLIP's text encoder is a transformer with a *causal* mask, as in GPT: position i attends
# to itself and the positions before it, never to those after (1 = may attend):

# %% [markdown] lang="zh"
# ### 文本塔内部：因果注意力，在文本结束词元处读出
# CLIP 的文本编码器是一个带*因果掩码*（causal mask）的 Transformer，和 GPT 一样：位置 i 只关注自己和它前面的位置，从不关注后面的位置（1 = 可以关注）：

# %%
short = tokenizer(["a red star"], return_tensors="pt")["input_ids"]
print(lesson.t(f"  causal mask of {tokenizer.convert_ids_to_tokens(short[0])}:",
               f"  {tokenizer.convert_ids_to_tokens(short[0])} 的因果掩码："))
print("\n".join("    " + " ".join(map(str, row)) for row in np.tril(np.ones((short.shape[1],) * 2, dtype=int))))

# %% [markdown]
# The sentence's vector is not an average over the tokens: it is the last layer's state at
# the end-of-text token (after the final layer norm), the one position that has attended to
# the whole sentence. transformers finds that position from the ids (`eos_token_id`); here
# it is checked against the model's `pooler_output`:

# %% [markdown] lang="zh"
# 句子的向量并不是所有词元的平均，而是最后一层在文本结束词元（end-of-text token）处的状态（经过最后的层归一化），因为只有这个位置关注过整个句子。transformers 根据 id（`eos_token_id`）找到这个位置；下面拿它和模型的 `pooler_output` 对照：

# %%
with torch.inference_mode():
    text_out = model.text_model(**batch)
ends = end_of_text_positions(batch["input_ids"], model.config.text_config.eos_token_id)
rows = torch.arange(len(ends))
read_at_end = text_out.last_hidden_state[rows, ends]
print(lesson.t(f"  last_hidden_state {tuple(text_out.last_hidden_state.shape)}: batch, tokens, width {shapes.text_width} "
               f"({REFERENCE_CLIP}: width {REFERENCE_CLIP_SHAPES.text_width}, "
               f"{REFERENCE_CLIP_SHAPES.context_length} tokens at most)",
               f"  last_hidden_state {tuple(text_out.last_hidden_state.shape)}：批次、词元、宽度 {shapes.text_width}"
               f"（{REFERENCE_CLIP}：宽度 {REFERENCE_CLIP_SHAPES.text_width}，最多 {REFERENCE_CLIP_SHAPES.context_length} 个词元）"))
print(lesson.t(f"  end-of-text positions {ends.tolist()}; pooler_output equals the state there: ",
               f"  文本结束词元的位置 {ends.tolist()}；pooler_output 与该处的状态相同：")
      + f"{torch.allclose(read_at_end, text_out.pooler_output)}")

# %% [markdown]
# So padding, which comes after the end-of-text token, cannot reach the sentence's vector:
# the causal mask already hides every later position from it. The attention mask is not
# what protects it. Three ways to see it on the padded sentence (row 2): give the model an
# attention mask of all ones, so padding counts as text; replace the padding by random
# tokens; and encode the sentence alone, with no padding at all.

# %% [markdown] lang="zh"
# 填充排在文本结束词元之后，所以影响不到句子的向量：因果掩码早已让它看不见任何靠后的位置，起保护作用的并不是注意力掩码。拿填充过的那句（第 2 行）做三个验证：给模型一个全为 1 的注意力掩码，让填充也算作文本；把填充换成随机词元；单独编码这句话，完全不填充。

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
variants_zh = {"attention mask of all ones": "注意力掩码全为 1",
               "random tokens after the end, all ones": "结束词元后换成随机词元，掩码全为 1",
               "alone, no padding": "单独编码，不填充"}
normal = sentence_vectors(batch["input_ids"], batch["attention_mask"])[1:2]
mask_cosines = {}
for name, (input_ids, attention_mask) in variants.items():
    mask_cosines[name] = float(cosine_similarity(normal, sentence_vectors(input_ids, attention_mask)[-1:])[0, 0])
    print(lesson.t(f"  cosine(padded with its mask, {name}) = ",
                   f"  带掩码的填充句对比“{variants_zh[name]}”：余弦相似度 = ")
          + f"{mask_cosines[name]:.8f}")
blue = tokenizer(["a blue star"], return_tensors="pt")
before_end = cosine_similarity(normal, sentence_vectors(blue["input_ids"], blue["attention_mask"]))
print(lesson.t("  whereas one word before the end changes it: cosine('a red star', 'a blue star') = ",
               "  相比之下，在结束词元之前改一个词，向量就变了：'a red star' 与 'a blue star' 的余弦相似度 = ")
      + f"{float(before_end[0, 0]):.4f}")
lesson.record(mask_cosines=mask_cosines)

# %% [markdown]
# Up to float rounding, the vector is the same in all four cases: what comes after the
# end-of-text token never reaches it. The mask does matter for encoders that read in both
# directions, such as BERT (the text towers of Chinese-CLIP and of 9.3's multilingual
# encoder), where every token attends to the padding unless the mask hides it, and for
# padding on the left, which would come before the end token.

# %% [markdown] lang="zh"
# 在浮点舍入误差之内，四种情况下的向量完全一样：文本结束词元之后的内容永远传不到它那里。掩码真正起作用的是另外两种情形：一是双向读取的编码器，比如 BERT（Chinese-CLIP 的文本塔和 9.3 的多语言编码器都属此类），每个词元都会关注到填充，除非掩码把它遮住；二是在左侧填充，那样填充就排在结束词元之前了。

# %% [markdown]
# ## 2. Image preprocessing
# Whatever its size or mode, an image is converted to RGB, resized so its short side
# fits the model, centre-cropped to a square and normalised with the training set's
# per-channel mean and standard deviation.

# %% [markdown] lang="zh"
# ## 2. 图像预处理
# 不管尺寸和模式如何，图像都要先转成 RGB，缩放到短边与模型输入一致，再从中心裁成正方形，最后用训练集逐通道的均值和标准差做归一化。

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
    {pixel_values[1].mean():.2f} (std {pixel_values[1].std():.2f}).""",
           zh=f"""处理器把一张 {photo.size[0]}x{photo.size[1]} 的照片和一幅 {toy_image.size[0]}x{toy_image.size[1]} 的场景
    变成形状为 {tuple(pixel_values.shape)} 的张量，四个维度依次是批次、通道、高、宽。{side} 像素是这个 CLIP
    的输入尺寸，{REFERENCE_CLIP} 用的是 {REFERENCE_CLIP_SHAPES.image_size} x {REFERENCE_CLIP_SHAPES.image_size}。
    归一化减去的均值、除以的标准差都来自 CLIP 的训练照片（逐通道计算），所以只有和那些照片差不多亮的图像，
    数值才落在 0 附近。这里照片的均值为 {pixel_values[0].mean():.2f}，标准差 {pixel_values[0].std():.2f}；
    玩具场景大部分是白色背景，均值为 {pixel_values[1].mean():.2f}，标准差 {pixel_values[1].std():.2f}。""")

figure, axes = plt.subplots(2, 3, figsize=(9, 6))
for row, (original, tensor) in enumerate(zip([photo, toy_image], pixel_values)):
    restored = np.clip(tensor.float().numpy() * std + mean, 0, 1).transpose(1, 2, 0)
    axes[row, 0].imshow(original)
    axes[row, 0].set_title(lesson.t("original ", "原图 ") + f"{original.size[0]}x{original.size[1]}")
    axes[row, 1].imshow(restored)
    axes[row, 1].set_title(lesson.t("model input ", "模型输入 ") + f"{restored.shape[1]}x{restored.shape[0]}")
    axes[row, 2].hist(tensor.float().numpy().reshape(3, -1).T, bins=40, color=["r", "g", "b"], alpha=0.6)
    axes[row, 2].set_title(lesson.t("normalised values (R, G, B)", "归一化后的数值（R、G、B）"))
    for axis in axes[row, :2]:
        axis.axis("off")
figure.suptitle(lesson.t("What the image encoder actually sees", "图像编码器实际看到的输入"))
figure.tight_layout()  # titles clear of the tick labels above them
lesson.save_figure(figure, "preprocessing.png")

# %% [markdown]
# Images come in many modes: greyscale, palette, with transparency. Feeding them
# unconverted breaks the 3-channel model, so every image goes through `to_rgb` first.

# %% [markdown] lang="zh"
# 图像的模式五花八门：灰度、调色板、带透明通道。不经转换直接送进去，3 通道的模型就会出错，所以每幅图像都要先经过 `to_rgb`。

# %%
for mode in ("L", "P", "RGBA", "CMYK"):
    converted = to_rgb(photo.convert(mode))
    print(lesson.t("  mode ", "  模式 ") + f"{mode:<5} -> {converted.mode} {converted.size}")

# %% [markdown]
# ### Inside the image tower: patches and the CLS token
# A vision transformer (ViT) reads an image as a sentence of patches: the input is cut
# into squares of `patch_size` pixels, each flattened and projected to one token, and a
# learnt CLS token is put in front. Unlike the text tower, every token attends to every
# other. The image's vector is the last layer's state at the CLS token (after a layer norm).

# %% [markdown] lang="zh"
# ### 图像塔内部：图像块与 CLS 词元
# 视觉 Transformer（ViT）把图像当作一句由图像块（patch）组成的话来读：输入被切成边长 `patch_size` 像素的正方形，每块展平后投影成一个词元，最前面再加一个可学习的 CLS 词元。和文本塔不同，这里每个词元都关注所有其他词元。图像的向量取最后一层在 CLS 词元处的状态（经过层归一化）。

# %%
lesson.say(f"""This CLIP cuts its {shapes.image_size} x {shapes.image_size} input into
    {shapes.patch_size}-pixel patches: {shapes.patches_per_side} x {shapes.patches_per_side} =
    {shapes.patches_per_side ** 2} patches + CLS = {shapes.image_tokens} tokens of width {shapes.vision_width}.
    {REFERENCE_CLIP} cuts {REFERENCE_CLIP_SHAPES.image_size} x {REFERENCE_CLIP_SHAPES.image_size} into {REFERENCE_CLIP_SHAPES.patch_size}-pixel patches:
    {REFERENCE_CLIP_SHAPES.patches_per_side} x {REFERENCE_CLIP_SHAPES.patches_per_side} =
    {REFERENCE_CLIP_SHAPES.patches_per_side ** 2} patches + CLS = {REFERENCE_CLIP_SHAPES.image_tokens} tokens of
    width {REFERENCE_CLIP_SHAPES.vision_width} (its config.json; CLIP paper, table 20).""",
           zh=f"""这个 CLIP 把 {shapes.image_size} x {shapes.image_size} 的输入切成 {shapes.patch_size} 像素的图像块：
    {shapes.patches_per_side} x {shapes.patches_per_side} = {shapes.patches_per_side ** 2} 个图像块 + CLS =
    {shapes.image_tokens} 个词元，宽度 {shapes.vision_width}。{REFERENCE_CLIP} 把
    {REFERENCE_CLIP_SHAPES.image_size} x {REFERENCE_CLIP_SHAPES.image_size} 的输入切成 {REFERENCE_CLIP_SHAPES.patch_size} 像素的图像块：
    {REFERENCE_CLIP_SHAPES.patches_per_side} x {REFERENCE_CLIP_SHAPES.patches_per_side} =
    {REFERENCE_CLIP_SHAPES.patches_per_side ** 2} 个图像块 + CLS = {REFERENCE_CLIP_SHAPES.image_tokens} 个词元，
    宽度 {REFERENCE_CLIP_SHAPES.vision_width}（见它的 config.json 和 CLIP 论文表 20）。""")
with torch.inference_mode():
    image_out = model.vision_model(pixel_values=pixel_values[1:].to(model.dtype))
    cls_state = model.vision_model.post_layernorm(image_out.last_hidden_state[:, 0])
print(f"  last_hidden_state {tuple(image_out.last_hidden_state.shape)}"
      + lesson.t(": image, tokens, width; pooler_output is the CLS state after the layer norm: ",
                 "：图像、词元、宽度；pooler_output 就是 CLS 处的状态经过层归一化的结果：")
      + f"{torch.allclose(cls_state, image_out.pooler_output)}")
lesson.record(image_tokens=int(image_out.last_hidden_state.shape[1]), patches_per_side=shapes.patches_per_side)
figure = patch_grid_figure(pixel_values[1].float().numpy() * std + mean, shapes.patch_size,
                           lesson.t(f"the model input cut into {shapes.patches_per_side} x {shapes.patches_per_side} "
                                    f"patches of {shapes.patch_size} px: {shapes.image_tokens - 1} tokens + CLS",
                                    f"模型输入切成 {shapes.patches_per_side} x {shapes.patches_per_side} 个 "
                                    f"{shapes.patch_size} 像素的图像块：{shapes.image_tokens - 1} 个词元 + CLS"))
lesson.save_figure(figure, "patches.png")

# %% [markdown]
# ## 3. Embeddings and normalisation
# Each tower ends in a linear projection, without bias, from its own width into the shared
# space, where image and text vectors can be compared. The raw vectors have different
# lengths; dividing by the length leaves only the direction, which is what similarity
# compares.

# %% [markdown] lang="zh"
# ## 3. 嵌入向量与归一化
# 每个塔最后都有一个不带偏置的线性投影（projection），把向量从各自的宽度投到共享空间，图像向量和文本向量在那里才能相互比较。原始向量长短不一；除以自身长度之后只剩下方向，而相似度比较的正是方向。

# %%
with torch.inference_mode():
    projected_text = model.text_projection(text_out.pooler_output)
    projected_image = model.visual_projection(image_out.pooler_output)
text_shape, image_shape = tuple(model.text_projection.weight.shape[::-1]), tuple(model.visual_projection.weight.shape[::-1])
print(lesson.t(f"  text:  pooled width {shapes.text_width} -> text_projection {text_shape} "
               f"-> {projected_text.shape[1]} ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.text_width} -> "
               f"{REFERENCE_CLIP_SHAPES.projection_dim})",
               f"  文本：池化后宽度 {shapes.text_width} -> text_projection {text_shape} -> {projected_text.shape[1]}"
               f"（{REFERENCE_CLIP}：{REFERENCE_CLIP_SHAPES.text_width} -> {REFERENCE_CLIP_SHAPES.projection_dim}）"))
print(lesson.t(f"  image: pooled width {shapes.vision_width} -> visual_projection "
               f"{image_shape} -> {projected_image.shape[1]} ({REFERENCE_CLIP}: "
               f"{REFERENCE_CLIP_SHAPES.vision_width} -> {REFERENCE_CLIP_SHAPES.projection_dim})",
               f"  图像：池化后宽度 {shapes.vision_width} -> visual_projection {image_shape} -> {projected_image.shape[1]}"
               f"（{REFERENCE_CLIP}：{REFERENCE_CLIP_SHAPES.vision_width} -> {REFERENCE_CLIP_SHAPES.projection_dim}）"))
same_as_encoder = np.allclose(projected_image.float().numpy(), encoder.encode_images([toy_image], normalize=False),
                              atol=1e-4)
print(lesson.t("  the same vector as encoder.encode_images(normalize=False): ",
               "  与 encoder.encode_images(normalize=False) 给出的向量相同：") + f"{same_as_encoder}")

distractors = [s.captions("en")[0] for s in generate_scenes(3, seed=8, split="heldout")]
texts = [captions[0], captions[1], *distractors]
raw_image = encoder.encode_images([toy_image], normalize=False)
raw_texts = encoder.encode_texts(texts, normalize=False)
lesson.say(f"""Image embedding: {raw_image.shape[1]} numbers ({REFERENCE_CLIP}: {REFERENCE_CLIP_SHAPES.projection_dim}),
    length {np.linalg.norm(raw_image):.2f}. Text embeddings: lengths
    {', '.join(f'{n:.2f}' for n in np.linalg.norm(raw_texts, axis=1))}. After normalisation every length is 1.""",
           zh=f"""图像嵌入：{raw_image.shape[1]} 个数（{REFERENCE_CLIP}：{REFERENCE_CLIP_SHAPES.projection_dim} 个），
    长度 {np.linalg.norm(raw_image):.2f}。文本嵌入的长度：
    {'、'.join(f'{n:.2f}' for n in np.linalg.norm(raw_texts, axis=1))}。归一化之后，长度全都是 1。""")
image_unit = raw_image / np.linalg.norm(raw_image, axis=1, keepdims=True)
text_unit = raw_texts / np.linalg.norm(raw_texts, axis=1, keepdims=True)

# %% [markdown]
# ## 4. Cosine similarity
# For unit vectors the cosine similarity is just the dot product. The scene's own English
# caption should score highest. Its Chinese caption describes the same scene, but this CLIP,
# like `openai/clip-vit-base-patch32`, learnt from English captions only: the byte tokens of
# step 1 were never tied to anything in an image, so expect the Chinese caption to score
# like the captions of other scenes, not like its English twin.

# %% [markdown] lang="zh"
# ## 4. 余弦相似度
# 对单位向量来说，余弦相似度就是点积。场景自己的英文描述应该得分最高。它的中文描述说的是同一个场景，但这个 CLIP 和 `openai/clip-vit-base-patch32` 一样只学过英文描述：第 1 步里的那些字节词元从没和图像里的任何东西挂上钩，所以中文描述的得分应该和其他场景的描述差不多，而不会接近它的英文原句。

# %%
similarity = (image_unit @ text_unit.T)[0]
for text, value in sorted(zip(texts, similarity), key=lambda pair: -pair[1]):
    marker = {captions[0]: lesson.t("<- the image's caption", "<- 这幅图像的描述"),
              captions[1]: lesson.t("<- the same caption in Chinese", "<- 同一条描述的中文版")}.get(text, "")
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
    capstone compares all of them; its `auto` strategy translates Chinese queries).""",
           zh=f"""最佳匹配：{best!r}。中文描述得分 {similarity[1]:+.3f}，英文描述 {similarity[0]:+.3f}，
    其他场景的描述在 {distractor_scores.min():+.3f} 到 {distractor_scores.max():+.3f} 之间。
    中文查询得另找入口：用专门训练过、能把中文映射进 CLIP 空间的文本编码器（9.3），先把查询译成英文，
    或者改用在中文图文对上训练的 CLIP（综合项目把这几种都比较了一遍；它的 `auto` 策略会先翻译中文查询）。""")
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

# %% [markdown] lang="zh"
# ## 小结
# * 字节级 BPE 分词器什么文本都能读，但真正有意义的只有训练文本里常见的那些片段：CLIP 的英文 BPE 把中文留成字节词元，只学过英文的 CLIP 给中文描述打的分，和给不相干描述的差不多。
# * 文本塔是因果的，句子向量在文本结束词元处读出，所以右侧的填充永远影响不到它，有没有掩码都一样。
# * 图像塔把图像切成图像块，再加一个 CLS 词元（玩具模型：8 x 8 + 1 = 65；224 像素输入的 ViT-B/32：7 x 7 + 1 = 50），图像向量在 CLS 处读出。
# * 每个塔池化后的状态都被投影到同一个共享空间；做 L2 归一化之后，点积就是余弦相似度。
# * 图像处理器依次转 RGB、缩放、裁剪，再用训练照片的均值和标准差归一化。

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

# %% [markdown] lang="zh"
# ## 练习
# 先运行 `python -m chapter09.exercises start 9.1`（它会把一个待填写的文件复制到 `my_exercises/ex9_1.py`），再运行 `python -m chapter09.exercises check 9.1`：检查器用你没见过的数据运行你的函数，逐题告诉你哪些通过了。
#
# 1. **先预测，再运行。** 拿你自己的一张照片运行第 2 步之前，先预测它归一化后均值的正负：偏暗的照片呢？雪景呢？然后运行验证。
# 2. **9.1.1 `l2_normalize`**（自动检查）：把每一行变成单位向量，遇到全零行也不能出现 NaN。
# 3. **9.1.2 `cosine_similarity_matrix`**（自动检查）：从原始嵌入出发，算出每幅图像与每条文本的相似度。
# 4. **9.1.3 `pad_batch`**（自动检查）：把词元 id 填充成一个矩形，并给出注意力掩码（在右侧填充，和 CLIP 的分词器一样）；然后解释：为什么第 1 步打印的余弦相似度即使用全 1 的掩码也保持为 1（在舍入误差之内）？如果掩码全为 1，哪一类文本编码器的结果会变？
# 5. **9.1.4 `normalize_pixels`**（自动检查）：CLIP 图像处理器的最后一步。
#
# ## 自测
# **1. 为什么要先把嵌入归一化再比较？**
# <details><summary>答案</summary>
# 原始嵌入的长度随输入而变（第 3 步打印的那些长度），原始向量的点积既看方向，也同样看长度。单位向量只保留方向，它们的点积就是余弦值，介于 -1 和 1 之间。
# </details>
#
# **2. 为什么只学过英文的 CLIP 给中文描述打的分，和给不相干描述的差不多？**
# <details><summary>答案</summary>
# 它的字节级 BPE 能写出任何文本，所以什么都不会报错：这条描述变成了一串字节词元（上面那条 27 个字符的描述，在玩具词表里是 81 个词元，用 OpenAI 的 BPE 是 64 个，都另加开始和结束词元）。但训练从没把任何图像和这些词元联系起来，所以文本结束词元处的向量落在哪里，全看那些未经训练的字节嵌入，而不会靠近它描述的场景。9.3 换了一条路：用多语言文本编码器把中文映射到同一空间。
# </details>
#
# **3. 填充位于文本结束词元之后。一个词元要放在哪里，才能改变句子的向量？**
# <details><summary>答案</summary>
# 放在文本结束词元处或它之前：因果掩码只让这个位置看到自己和前面的内容。第 1 步已经演示过：结束词元之后的随机词元让余弦相似度保持为 1，而在它之前改一个词（"red" -> "blue"）就让向量明显偏离。
# </details>
#
# **4. 图像处理器为什么需要训练集的均值和标准差？**
# <details><summary>答案</summary>
# 编码器的权重是在按这种方式归一化的输入上学出来的；换一种缩放，每个激活值都会跟着偏移。只有和训练照片相似的图像，数值才以 0 为中心。
# </details>
#
# ## 延伸阅读
# * Radford et al., *Learning Transferable Visual Models From Natural Language Supervision* (CLIP, arXiv 2103.00020)：读 2.3-2.5 节，看两个编码器和训练目标（对比学习）。
# * Sennrich et al., *Neural Machine Translation of Rare Words with Subword Units* (arXiv 1508.07909)：BPE 的出处，CLIP 的分词器就用它。
# * Dosovitskiy et al., *An Image is Worth 16x16 Words* (ViT, arXiv 2010.11929)：图像编码器的来历，以及为什么要把输入切成图像块。
#
# **术语对照**
# * 词元 / token；分词器 / tokenizer；词表 / vocabulary；字节级 BPE / byte-level BPE
# * 填充 / padding；注意力掩码 / attention mask；因果掩码 / causal mask；文本结束词元 / end-of-text token
# * 图像块 / patch；视觉 Transformer / vision transformer (ViT)；CLS 词元 / CLS token；层归一化 / layer norm
# * 嵌入 / embedding；投影 / projection；共享空间 / shared space；归一化 / normalise；余弦相似度 / cosine similarity；点积 / dot product
# * 对比学习 / contrastive learning（CLIP 的训练目标，见延伸阅读中的 CLIP 论文）

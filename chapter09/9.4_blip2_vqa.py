"""9.4 BLIP-2 vision Q&A: captions in two languages, answers to questions, and a chat that remembers."""
# %% [markdown]
# # 9.4 BLIP-2 vision Q&A
# CLIP scores how well a text fits an image; it cannot *write* text. BLIP and BLIP-2
# can: a vision encoder turns the image into features and a language model, attending
# to them, writes a caption or an answer.
#
# BLIP-2 (`Salesforce/blip2-opt-2.7b`) keeps a frozen ViT-g image encoder and a frozen
# OPT-2.7B language model, and learns only a small *Q-Former* in between that turns the
# image into 32 "query tokens" the language model reads as if they were words. In all
# it has **3.74 B parameters: 15.0 GB (13.9 GiB) in fp32, 7.5 GB (7.0 GiB) in bf16/fp16**. A machine
# that cannot hold that takes the CPU-sized route: BLIP captioning base (247 M) and
# BLIP-VQA base (385 M). This lesson decides which route fits, says why, and then
# captions, answers questions and chats.
#
# The toy world has a BLIP-2 twin of a few MB (`chapter09/toyworld/train_blip2.py`),
# built the way BLIP-2 was: a frozen image encoder pretrained elsewhere (the toy BLIP
# captioner's vision tower), a frozen OPT-style language model pretrained on text only,
# and between them a Q-Former that alone was trained, on image-caption pairs. It fits
# anywhere, so with `--models toy` the lesson takes the BLIP-2 route and opens it up.

# %%
import json

import matplotlib.pyplot as plt

from chapter09 import config, vqa
from chapter09.captioning import Captioner, names_every_object
from chapter09.figures import caption_figure
from chapter09.images import load_image
from chapter09.lesson import start, why_unavailable
from chapter09.models import ModelUnavailableError
from chapter09.toyworld import generate_scenes

lesson = start("9.4", "BLIP-2 vision Q&A")

# %% [markdown]
# ## 1. Which route fits this machine?
# `vqa.choose_route` asks two questions: can BLIP-2's weights be had here (hub, cache
# or a folder you named), and do they fit in free memory, counting the weights in the
# chosen dtype plus 25% for activations and the generation cache? If either answer is
# no, it takes BLIP-VQA and gives the reason. The sum below is the real checkpoint's; the
# toy twin's weights are measured from its files (a few MB), so in the toy world BLIP-2 fits.

# %%
free_gib = vqa.available_memory_bytes("cpu") / 2**30
lesson.say(f"""BLIP-2 OPT-2.7b: {vqa.BLIP2_PARAMS / 1e9:.2f} B parameters x 4 bytes = {vqa.BLIP2_PARAMS * 4 / 1e9:.1f} GB
    = {vqa.BLIP2_PARAMS * 4 / 2**30:.1f} GiB in fp32, x 2 bytes = {vqa.BLIP2_PARAMS * 2 / 1e9:.1f} GB =
    {vqa.BLIP2_PARAMS * 2 / 2**30:.1f} GiB in bf16/fp16, before activations.
    This machine has {free_gib:.1f} GiB of memory free right now.""")
route = vqa.choose_route(lesson.settings)
reason = why_unavailable(route.reason) if route.name == "blip" else route.reason
print(f"  route: {route.name}\n  why:   {reason}")
lesson.record(vqa_route=route.name, vqa_route_reason=reason, free_memory_gib=round(free_gib, 1))

# %% [markdown]
# ## 2. How BLIP-2 reads an image: image tokens in the prompt
# The language model reads one sequence. Since transformers 4.47 the *processor* puts
# one `<image>` placeholder per query token at the front of the prompt, and the model
# swaps the Q-Former's outputs into those slots. Checkpoints saved before that change
# lack `num_query_tokens` in their processor config and produce prompts without slots;
# `vqa.ensure_image_tokens` fills it in from the model config (the original chapter's
# notebook broke exactly here). Below, a BLIP-2 processor expands a question. On the
# BLIP-2 route it is the checkpoint's own (the toy twin's: OPT-style byte-level BPE, where
# `Ġ` marks a word that follows a space and `</s>` is OPT's start token, and 16 query
# tokens). Without any BLIP-2 we build the same processor class around the toy BLIP
# tokenizer, with BLIP-2's 32 query tokens, so the mechanics are identical.

# %%
from transformers import Blip2Processor

if route.name == "blip2":
    answerer = blip2 = vqa.Blip2Answerer(route.resolved, lesson.settings)  # calls ensure_image_tokens
    processor = blip2.processor
else:
    from transformers import BlipImageProcessor

    from chapter09.toyworld.corpus import toy_corpus
    from chapter09.toyworld.tokenizers import blip_word_tokenizer

    tokenizer = blip_word_tokenizer(toy_corpus(50) + ["Question: Answer:"])
    # 224 x 224 as in Salesforce/blip2-opt-2.7b's preprocessor_config.json (BlipImageProcessor's default is 384)
    image_processor = BlipImageProcessor(size={"height": 224, "width": 224})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=32)
question = "how many shapes are there?"
inputs = processor(images=[generate_scenes(1, 3, "heldout")[0].render()], text=[f"Question: {question} Answer:"],
                   return_tensors="pt")
ids = inputs["input_ids"][0].tolist()
image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token.content)
slots = ids.count(image_token_id)
words = processor.tokenizer.convert_ids_to_tokens([i for i in ids if i != image_token_id])
print(f"  prompt ids: {slots} x {processor.image_token.content} then {words}")
print(f"  pixel_values: {tuple(inputs['pixel_values'].shape)}")
if route.name != "blip2":
    print("  (the words come from the toy BERT-style tokenizer, hence [CLS] ... [SEP]; blip2-opt-2.7b uses OPT's\n"
          "   byte-level BPE tokenizer, whose prompts start with </s>, OPT's start token, and have no [SEP])")
lesson.record(image_token_slots=slots, num_query_tokens=processor.num_query_tokens)

# %% [markdown]
# ## 3. Inside BLIP-2: query tokens, Q-Former, projection
# What fills those `<image>` slots? Three steps, the first and last frozen:
#
# 1. the **frozen image encoder** turns the image into one token per patch plus a class
#    token (blip2-opt-2.7b: EVA ViT-g/14 at 224 px, 16 x 16 patches + 1 = **257 tokens of
#    1408 dims**);
# 2. the **Q-Former** starts from a fixed set of **learned query tokens** (32 of 768 dims),
#    the same for every image; they attend to each other and, by cross-attention (every
#    other layer in BLIP-2, every layer in the twin), to the image tokens, so whatever the
#    image, 32 vectors come out;
# 3. **`language_projection`**, one linear layer, maps them to the width of the **frozen
#    LM**'s input embeddings (OPT-2.7B: 2560), and they take the `<image>` slots.
#
# So the LM reads 32 visual tokens however many patches the encoder made. 9.5's tiny VLM
# instead sends *every* patch token through its projector (CLIP ViT-B/32 at 224 px: 50).
# Below, the same steps on the route's BLIP-2 with the library's own
# `get_image_features`, which is exactly what `generate` runs before the LM.

# %%
if route.name == "blip2":
    import torch

    model = blip2.model
    pixels = blip2.processor.image_processor(images=[generate_scenes(1, 3, "heldout")[0].render()],
                                             return_tensors="pt")["pixel_values"].to(blip2.device, blip2.dtype)
    with torch.inference_mode():
        features = model.get_image_features(pixel_values=pixels, return_dict=True)
    steps = {
        "image encoder output (frozen)": features.last_hidden_state,
        "learned query tokens": model.query_tokens,
        "Q-Former output": features.qformer_outputs.last_hidden_state,
        "language_projection output = LM input embeddings": features.pooler_output,
    }
    for name, tensor in steps.items():
        print(f"  {name:<50} {tuple(tensor.shape)}")
    counts = {"image encoder (frozen)": model.vision_model, "language model (frozen)": model.language_model,
              "Q-Former": model.qformer, "language_projection": model.language_projection}
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in counts.items()}
    counts["query tokens"] = model.query_tokens.numel()
    print("  parameters: " + ", ".join(f"{name} {n / 1e6:.3f} M" for name, n in counts.items()))
    trained = counts["Q-Former"] + counts["language_projection"] + counts["query tokens"]
    print(f"  trained in BLIP-2's recipe: {trained / 1e6:.3f} M of {sum(counts.values()) / 1e6:.3f} M "
          f"({trained / sum(counts.values()):.0%})")
    lesson.record(blip2_shapes={name: list(tensor.shape) for name, tensor in steps.items()},
                  blip2_parameters=counts)

    from chapter09.vlm import tiny as tiny_vlm  # 9.5's VLM: every patch token goes to the LM

    tiny = tiny_vlm.load(config.TOY_MODELS_DIR / "tiny_vlm")
    tiny_pixels = tiny.image_processor(images=[generate_scenes(1, 3, "heldout")[0].render()],
                                       return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        tiny_visual = tiny.visual_tokens(tiny.image_features(tiny_pixels))
    rows = {"blip2-opt-2.7b (real)": ("257 x 1408", "32 x 768", "(1, 32, 2560)"),
            f"BLIP-2 twin ({'toy' if route.resolved.is_toy else route.resolved.location})":
                (" x ".join(map(str, steps["image encoder output (frozen)"].shape[1:])),
                 " x ".join(map(str, steps["learned query tokens"].shape[1:])),
                 str(tuple(features.pooler_output.shape)))}
    print(f"\n  {'model':<28} {'image tokens':<14} {'queries':<10} LM's visual prefix")
    for name, (image_tokens, queries, prefix) in rows.items():
        print(f"  {name:<28} {image_tokens:<14} {queries:<10} {prefix}")
    print(f"  9.5's tiny VLM (toy)         every patch + class token -> {tuple(tiny_visual.shape)}; CLIP ViT-B/32 "
          f"at 224 px: 50 visual tokens")
    lesson.record(visual_tokens={"blip2": int(features.pooler_output.shape[1]),
                                 "tiny_vlm_9_5": int(tiny_visual.shape[1])})

# %% [markdown]
# ### The BLIP-2 twin end to end: captions and zero-shot VQA
# The twin's Q-Former was trained on one task only: the frozen LM must write the
# image's caption after the visual prefix. It never saw a question. Its language model,
# though, read text passages before the Q-Former existed: a description, then the
# description again or `Question: ... Answer: ...` about it. If the Q-Former's 16
# vectors carry what a description would, the LM can answer questions about the image
# with the paper's prompt `Question: {q} Answer:`: that is BLIP-2's *zero-shot* VQA,
# measured here on held-out scenes per kind of question. The second line gives the frozen
# LM the scene's true caption as text instead of the image: the Q-Former can at best hand
# over what a perfect description would, so that line is roughly the ceiling. For colour,
# shape and position the tiny LM is what limits the twin: even reading the true caption it
# misses many, more so about the held-out pairs ("red star", ...) it never read; counting
# is where the visual prefix loses against text. The twin is English only, like blip2-opt-2.7b (a
# Chinese caption would come from the translator). With real weights the same calls run on
# your photos, unscored.

# %%
if route.name == "blip2" and route.resolved.is_toy:
    from chapter09.toyworld.train_blip2 import caption_share, text_only_vqa_accuracy, vqa_accuracy_by_kind

    blip2_scenes = generate_scenes(200, config.TOY_HELDOUT_SEED, "heldout")  # held out: never trained on
    share, blip2_captions = caption_share(blip2, blip2_scenes)
    for caption, scene in list(zip(blip2_captions, blip2_scenes))[:3]:
        print(f"  BLIP-2 twin: {caption!r}\n    truth:     {scene.captions('en')[0]!r}")
    print(f"  captions naming every object's colour and shape: {share:.3f} of {len(blip2_scenes)} held-out images")
    zero_shot = vqa_accuracy_by_kind(blip2, blip2_scenes[:80])
    reading = text_only_vqa_accuracy(blip2, blip2_scenes[:80])  # the LM given the true caption instead
    print("  zero-shot VQA (English, exact answer): " + ", ".join(f"{k} {v:.3f}" for k, v in zero_shot.items()))
    print("  the frozen LM reading the true caption:  " + ", ".join(f"{k} {v:.3f}" for k, v in reading.items()))
    session = vqa.ChatSession(blip2, blip2_scenes[0].render())
    for question in ("how many shapes are there?", f"what colour is the {blip2_scenes[0].objects[0].shape}?"):
        print(f"  you> {question}\n  BLIP-2 twin> {session.ask(question)}")
    print(f"  its next prompt carries the turns: {session.prompt_for('anything else?')!r}")
    lesson.record(blip2_caption_accuracy_en=round(share, 3), blip2_zero_shot_vqa=zero_shot,
                  blip2_lm_reading_true_caption=reading)
elif route.name == "blip2":
    image = load_image(config.ASSETS_DIR / json.loads((config.ASSETS_DIR / "photos.json").read_text(
        encoding="utf-8"))[0]["image"])
    print(f"  caption: {blip2.caption([image])[0]!r}; Question: what is in the picture? Answer: "
          f"{blip2.answer(image, 'what is in the picture?')!r}")

# %% [markdown]
# ## 4. Captions in English and Chinese
# The BLIP captioner writes English. On the real route, Chinese is the English caption
# translated by an English-to-Chinese MarianMT model (BLIP never saw Chinese). The toy
# twin was trained on both languages and simply continues a language token, `<en>` or
# `<zh>`. In the toy world captions can be *scored*: one is right when it names every
# object's colour and shape, no more and no fewer. The scenes are held out: new seeds,
# and colour-shape pairs (a red star, a blue triangle, ...) never shown in training.

# %%
scenes = generate_scenes(200, config.TOY_HELDOUT_SEED, "heldout")  # held out: never seen in training
photos = json.loads((config.ASSETS_DIR / "photos.json").read_text(encoding="utf-8"))
try:
    captioner = Captioner(lesson.settings)
except ModelUnavailableError as error:  # e.g. the toy twin has not been trained in this checkout
    captioner = None
    lesson.say(f"No captioner can be loaded here, so this step is skipped: {why_unavailable(error)}")
    lesson.record(captions_skipped=why_unavailable(error))

if captioner is not None:
    scored = captioner.resolved.is_toy
    if scored:
        images = [scene.render() for scene in scenes]
    else:
        images = [load_image(config.ASSETS_DIR / photo["image"]) for photo in photos]
    captions = {lang: captioner.caption(images, lang=lang) for lang in ("en", "zh")}
    for i in range(4):
        print(f"  [{i}] en: {captions['en'][i]}\n      zh: {captions['zh'][i]}")
    if scored:
        for lang in ("en", "zh"):
            accuracy = sum(names_every_object(c, s, lang) for c, s in zip(captions[lang], scenes)) / len(scenes)
            lesson.record(**{f"caption_accuracy_{lang}": round(accuracy, 3)})
            print(f"  [{lang}] captions naming every object's colour and shape: {accuracy:.3f} "
                  f"of {len(scenes)} held-out images")
    lesson.record(caption_examples=[{"en": e, "zh": z} for e, z in zip(captions["en"][:6], captions["zh"][:6])])

    if route.name == "blip2":  # BLIP-2 captions too: an empty prompt, and the LM continues from the image tokens
        blip2_captions = answerer.caption(images[:4])
        for i, caption in enumerate(blip2_captions):
            print(f"  [{i}] BLIP-2: {caption}")
        lesson.record(blip2_captions=blip2_captions)

    which = "the toy BLIP twin, held-out scenes" if scored else \
        f"{captioner.resolved.spec.hub_id}, Chinese translated from its English"
    figure = caption_figure(images[:4], {"en": captions["en"][:4], "zh": captions["zh"][:4]},
                            f"9.4 captions in English and Chinese ({which})")
    lesson.save_figure(figure, "captions.png")

# %% [markdown]
# ## 5. Visual question answering
# `vqa.load_answerer` follows the route chosen in step 1. BLIP-VQA encodes the image
# and the question together and decodes a short answer; BLIP-2 continues the prompt
# "Question: ... Answer:". In the toy world, questions ask for a count, a colour, a
# shape or a position, in English and Chinese, and answers are scored exactly. There
# the scored answerer is the BLIP-VQA twin, trained on questions in both languages, beside
# the BLIP-2 twin's zero-shot English figures of section 3.

# %%
try:
    if route.name != "blip2" or route.resolved.is_toy:
        answerer = vqa.BlipAnswerer(lesson.settings)
except ModelUnavailableError as error:
    answerer = None
    lesson.say(f"No question-answering model can be loaded here, so steps 5 and 6 are skipped: "
               f"{why_unavailable(error)}")
    lesson.record(vqa_skipped=why_unavailable(error))

if answerer is not None and answerer.resolved.is_toy:
    pairs = [(scene, qa) for scene in scenes[:80] for qa in scene.questions()]  # every question of 80 scenes
    answers = answerer.answer_batch([s.render() for s, _ in pairs], [qa["question"] for _, qa in pairs])
    right = [vqa.answers_match(answer, qa["answer"]) for answer, (_, qa) in zip(answers, pairs)]
    by_type = {}
    for ok, (_, qa) in zip(right, pairs):
        by_type.setdefault(f"{qa['type']} ({qa['lang']})", []).append(ok)
    by_type = {kind: round(sum(oks) / len(oks), 3) for kind, oks in sorted(by_type.items())}
    accuracy = sum(right) / len(right)
    print(f"  exact-answer accuracy: {accuracy:.3f} on {len(right)} held-out questions")
    for kind, value in by_type.items():
        print(f"    {kind:<15} {value:.3f}")
    wrong = [(qa["question"], answer, qa["answer"]) for answer, (_, qa), ok in zip(answers, pairs, right) if not ok]
    print("  some misses (question, answer, truth):", wrong[:3])
    lesson.record(vqa_accuracy=round(accuracy, 3), vqa_questions=len(right), vqa_accuracy_by_type=by_type)

    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.barh(list(by_type), list(by_type.values()), color="tab:green")
    for row, value in enumerate(by_type.values()):
        axis.text(value, row, f" {value:.3f}", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1.12)
    axis.set_xlabel("exact-answer accuracy on held-out scenes")
    axis.set_title(f"9.4 VQA ({type(answerer).__name__}), {len(right)} questions")
    lesson.save_figure(figure, "vqa_accuracy.png")
elif answerer is not None:
    image = load_image(config.ASSETS_DIR / photos[0]["image"])
    for question in ("what is in the picture?", "what colour is it?"):
        print(f"  {photos[0]['image']}: {question} -> {answerer.answer(image, question)}")

# %% [markdown]
# ## 6. A chat that remembers
# A `ChatSession` keeps the question/answer history. On the BLIP-2 route each new prompt
# carries the last three turns as "Question: ... Answer: ...", so "and where is it?" can
# refer back. That format is the prompt the BLIP-2 paper used for zero-shot VQA
# ("Question: {} Answer:"); BLIP-2 OPT was neither instruction- nor chat-tuned, so
# stringing turns together is this chapter's convention, and how well the model uses
# earlier turns is something to test on your images, not a promise. BLIP-VQA reads one
# question at a time, so on that route the history is a transcript the model does not see.
# In the toy world the scripted chat below, which mixes English and Chinese, runs on the
# BLIP-VQA twin; section 3 showed the English-only BLIP-2 twin reading its history.
#
# In a terminal: `python -m chapter09.vqa chat IMAGE` (no widgets: type a question,
# `reset` forgets, an empty line quits). Below, the same loop reads a scripted conversation.

# %%
if answerer is not None:
    if answerer.resolved.is_toy:
        image, first = scenes[0].render(), scenes[0].objects[0]
        script = ["how many shapes are there?", "图中有几个图形？", f"what colour is the {first.shape}?",
                  f"where is the {first.colour} {first.shape}?", ""]
    else:
        image = load_image(config.ASSETS_DIR / photos[0]["image"])
        script = ["what animal is this?", "what colour is it?", "is it indoors?", ""]
    typed = iter(script)

    def scripted_input(prompt):  # stands in for input(): prints what a learner would type
        line = next(typed)
        print(prompt + line)
        return line

    session = vqa.ChatSession(answerer, image)
    vqa.chat_loop(session, read=scripted_input)
    print(f"\nThe model {'reads' if answerer.uses_history else 'does not read'} the history. "
          f"The next BLIP-2 prompt would be:\n  {session.prompt_for('anything else?')!r}")
    lesson.record(chat=[{"question": q, "answer": a} for q, a in session.history])
    session.reset()  # what typing 'reset' does
    print(f"after reset: {len(session.history)} remembered turns")

# %%
lesson.finish()

# %% [markdown]
# ## Exercises
# `python -m chapter09.exercises start 9.4`, fill in `my_exercises/ex9_4.py`, then
# `python -m chapter09.exercises check 9.4`.
#
# 1. **Predict, then run.** How many GiB would BLIP-2 OPT-2.7b need in int8, with the 25 %
#    headroom? Would it fit on a 16 GB T4 in fp16?
# 2. **9.4.1 `chat_prompt`** (checked, against `vqa.build_prompt`): the prompt with the last turns.
# 3. **9.4.2 `weights_gib` and `fits_in_memory`** (checked): the sum `vqa.choose_route` does, in GiB.
# 4. **9.4.3 `vqa_accuracy`** (checked): exact-answer accuracy, overall and per question kind.
# 5. **Explore.** Ask the toy VQA twin a question of a kind it never saw ("is the star bigger
#    than the circle?"). What does it answer, and why can it not say "I don't know"?
#
# ## Self-check
# **1. What does the Q-Former give the language model?**
# <details><summary>Answer</summary>
# A fixed number of vectors (32 for blip2-opt-2.7b) in the LM's embedding space, computed
# from the frozen image encoder's features by learnt queries. The LM reads them in the
# `<image>` slots as if they were words; only the Q-Former (and a projection) was trained.
# </details>
#
# **2. BLIP-2 OPT-2.7b in fp32: 15.0 GB or 13.9 GiB?**
# <details><summary>Answer</summary>
# Both: 3.74e9 parameters x 4 bytes = 15.0e9 bytes = 15.0 GB (10^9 bytes) = 13.9 GiB (2^30
# bytes). Memory tools mix the two units; the chapter's code counts GiB.
# </details>
#
# **3. Does BLIP-VQA remember the previous question?**
# <details><summary>Answer</summary>
# No: it encodes the image with the current question only. The chat keeps a history, but on
# that route the model never reads it.
# </details>
#
# ## Further reading
# * Li et al., *BLIP: Bootstrapping Language-Image Pre-training* (arXiv 2201.12086): the
#   captioner and the VQA model of this section, and CapFilt, how it cleaned web captions.
# * Li et al., *BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders and
#   Large Language Models* (arXiv 2301.12597): the Q-Former, and its zero-shot VQA
#   experiments for the "Question: ... Answer:" prompt.
# * Zhang et al., *OPT: Open Pre-trained Transformer Language Models* (arXiv 2205.01068):
#   the language model inside blip2-opt-2.7b.

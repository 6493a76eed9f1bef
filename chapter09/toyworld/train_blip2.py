"""The BLIP-2 toy twin, trained the way BLIP-2 was: a frozen image encoder, a frozen LM, a Q-Former between.

    python -m chapter09.toyworld train blip2       # Blip2ForConditionalGeneration + Blip2Processor

Li et al. (arXiv 2301.12597) took an image encoder and a language model that were each
pretrained elsewhere, froze both, and trained only the Querying Transformer (Q-Former),
its learned query tokens and a linear ``language_projection`` that maps the Q-Former's
outputs into the LM's input embeddings. The twin repeats that at toy size:

1. **Frozen image encoder, pretrained elsewhere**: the vision tower of the toy BLIP
   captioner (``twins/captioner``) converted to ``Blip2VisionModel`` (``blip2_vision_from_blip``).
   The two classes have the same layers; BLIP's qkv projection has a key bias and BLIP-2's
   has none, and dropping it changes nothing (a constant added to every key shifts each
   query's attention logits by one constant, which softmax ignores).
2. **Frozen language model, pretrained on text only**: an ``OPTForCausalLM`` with an
   OPT-style byte-level BPE tokenizer (``GPT2Tokenizer``, ``</s>`` as start and end token)
   learnt on the toy corpus, trained on English text passages (``lm_passage``): a scene
   description, OPT's document separator ``</s>``, then either the description restated in
   its canonical words or ``Question: ... Answer: ...`` turns about it. The description
   sits where BLIP-2's processor puts the image (before ``</s>``), so the visual prefix
   takes the place of a text the LM already knows how to read; the question/answer
   passages are how zero-shot VQA can come from the LM, as it does in BLIP-2.
3. **Stage-2 generative pretraining**: only the Q-Former, the query tokens and
   ``language_projection`` learn, on image-caption pairs (the canonical English caption
   after the visual prefix). The Q-Former never sees a question. Unlike BLIP-2 there is
   no stage 1 (image-text contrastive/matching/grounded generation) and the Q-Former
   starts from random weights, not from BERT.

English only, as ``Salesforce/blip2-opt-2.7b``: a Chinese caption comes from the translator.
Zero-shot VQA is measured with the paper's prompt ``Question: {q} Answer:`` on held-out
scenes (``measure``); tests/test_toy_blip2.py asserts the figures.

Exact command that trained the committed twin (seed 0, the defaults of ``Blip2TwinConfig``): 1645 s
on one thread of the 2-core CPU, shared with other jobs (load average 4-5); chapter09/README.md has
its figures:

    python -m chapter09.toyworld train blip2
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..training import LossLog, adamw_cosine, decay_groups, optimizer_step, seed_everything
from .scenes import Scene, generate_scenes

OPT_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0-3, as in facebook/opt-* and blip2-opt-2.7b
QUESTION_PROMPT = "Question: {} Answer:"  # the BLIP-2 paper's zero-shot VQA prompt
LM_SCENE_SEED_OFFSET = 300  # the LM reads other train-split scenes than the Q-Former's images
IMAGE_SCENE_SEED_OFFSET = 400
QUESTION_KINDS = ("count", "colour", "shape", "position")


@dataclass(frozen=True)
class Blip2TwinConfig:
    """Sizes and schedule of the twin (the real blip2-opt-2.7b's figures in the comments)."""

    num_query_tokens: int = 16  # real: 32
    qformer_hidden: int = 128  # real: 768 (BERT-base)
    qformer_layers: int = 2  # real: 12, cross-attention every other layer
    lm_hidden: int = 160  # real: 2560 (OPT-2.7B)
    lm_layers: int = 3  # real: 32
    lm_heads: int = 4  # real: 32
    bpe_merges: int = 300
    lm_scenes: int = 20000
    lm_steps: int = 1600
    lm_batch: int = 48
    lm_lr: float = 2e-3
    image_scenes: int = 12000
    qformer_steps: int = 1500
    qformer_batch: int = 48
    qformer_lr: float = 1e-3
    restate_share: float = 0.4  # share of LM passages that restate the description (the rest: questions)
    chained_questions: float = 0.3  # share of QA passages with 2-3 turns, as vqa.build_prompt writes a chat


# ----------------------------------------------------------------------------- tokenizer
def opt_tokenizer(texts: list[str], merges: int = 300):
    """OPT's tokenizer at toy size: GPT-2 byte-level BPE learnt on ``texts``, ``</s>`` as BOS and EOS.

    Left padding, so a batch of prompts ends where generation starts.
    """
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import GPT2Tokenizer

    from .tokenizers import learn_bpe_merges

    split = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = Counter(word for text in texts for word, _span in split.pre_tokenize_str(text))
    learnt = learn_bpe_merges(words, merges, suffix="")  # GPT-2 marks word starts (Ġ), not word ends
    vocab = {token: i for i, token in enumerate(OPT_SPECIALS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):  # every byte: no text is ever unknown
        vocab.setdefault(char, len(vocab))
    for left, right in learnt:
        vocab.setdefault(left + right, len(vocab))
    return GPT2Tokenizer(vocab=vocab, merges=learnt, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                         unk_token="<unk>", add_bos_token=True, padding_side="left", model_max_length=128)


def english_questions(scene: Scene) -> list[dict]:
    return [qa for qa in scene.questions() if qa["lang"] == "en"]


def tokenizer_texts(scenes: list[Scene]) -> list[str]:
    texts = [QUESTION_PROMPT.format("") + "."]
    for scene in scenes:
        texts += scene.captions("en") + [qa["question"] for qa in english_questions(scene)]
        texts += [" " + qa["answer"] for qa in english_questions(scene)]
    return texts


def new_processor(cfg: Blip2TwinConfig):
    """Blip2Processor: the captioner's BlipImageProcessor (96 px) and the toy OPT tokenizer.

    The processor adds ``<image>`` to the vocabulary and writes ``num_query_tokens`` of them
    before every prompt, as blip2-opt-2.7b's processor does since transformers 4.47.
    """
    from transformers import Blip2Processor

    from .train_blip import blip_image_processor

    tokenizer = opt_tokenizer(tokenizer_texts(generate_scenes(3000, config.TOY_TRAIN_SEED, "train", unique=False)),
                              cfg.bpe_merges)
    return Blip2Processor(image_processor=blip_image_processor(), tokenizer=tokenizer,
                          num_query_tokens=cfg.num_query_tokens)


# ----------------------------------------------------------------------------- the three parts
def blip2_vision_from_blip(blip_vision):
    """``Blip2VisionModel`` with the weights of a ``BlipVisionModel`` (same layers, same outputs).

    BLIP-2's attention has a query and a value bias but no key bias. BLIP's key bias b_k adds
    q·b_k to every logit of query q, the same for all keys, and softmax is unchanged by a
    constant shift; so it is dropped exactly (tests check the outputs agree).
    """
    from transformers import Blip2VisionConfig, Blip2VisionModel

    source = blip_vision.config
    target = Blip2VisionModel(Blip2VisionConfig(
        hidden_size=source.hidden_size, intermediate_size=source.intermediate_size,
        num_hidden_layers=source.num_hidden_layers, num_attention_heads=source.num_attention_heads,
        image_size=source.image_size, patch_size=source.patch_size, hidden_act=source.hidden_act,
        layer_norm_eps=source.layer_norm_eps, qkv_bias=True))
    state = {name: tensor.float() for name, tensor in blip_vision.state_dict().items()}
    width = source.hidden_size
    for name, tensor in state.items():
        if name.endswith("self_attn.qkv.bias"):
            tensor[width:2 * width] = 0.0  # the key third: softmax-invariant, BLIP-2 has none
    target.load_state_dict(state, strict=True)
    return target.eval()


def opt_config(tokenizer, cfg: Blip2TwinConfig):
    from transformers import OPTConfig

    return OPTConfig(vocab_size=len(tokenizer), hidden_size=cfg.lm_hidden, word_embed_proj_dim=cfg.lm_hidden,
                     ffn_dim=4 * cfg.lm_hidden, num_hidden_layers=cfg.lm_layers, num_attention_heads=cfg.lm_heads,
                     max_position_embeddings=128, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)


def blip2_config(vision_config, text_config, image_token_id: int, cfg: Blip2TwinConfig):
    from transformers import Blip2Config

    return Blip2Config(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(),
        qformer_config=dict(hidden_size=cfg.qformer_hidden, num_hidden_layers=cfg.qformer_layers,
                            num_attention_heads=4, intermediate_size=4 * cfg.qformer_hidden,
                            encoder_hidden_size=vision_config.hidden_size, cross_attention_frequency=1,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            vocab_size=text_config.vocab_size),
        num_query_tokens=cfg.num_query_tokens, image_token_index=image_token_id)


def assemble_blip2(vision, lm, tokenizer, cfg: Blip2TwinConfig):
    """``Blip2ForConditionalGeneration`` holding ``vision`` and ``lm``, with a fresh Q-Former and query tokens."""
    import torch
    from transformers import Blip2ForConditionalGeneration

    model = Blip2ForConditionalGeneration(blip2_config(vision.config, lm.config,
                                                       tokenizer.convert_tokens_to_ids("<image>"), cfg))
    model.vision_model.load_state_dict(vision.state_dict())
    model.language_model.load_state_dict(lm.state_dict())
    with torch.no_grad():  # transformers starts them at 0: every query would stay identical to every other
        model.query_tokens.normal_(0.0, 0.02)
    return model.eval()


# ----------------------------------------------------------------------------- stage 0: the LM reads text
def lm_passage(scene: Scene, rng: random.Random, restate: float = 0.4, chained: float = 0.3) -> tuple[str, str]:
    """(context, continuation) of one text passage: a description, then ``</s>``, then one of

    * the description restated in the canonical words (what the captioner will be asked), or
    * one to three ``Question: ... Answer: ...`` turns about it (what VQA will ask).
    """
    context = rng.choice(scene.captions("en"))
    questions = english_questions(scene)
    if rng.random() < restate:
        return context, scene.captions("en")[0]
    turns = rng.sample(questions, min(len(questions), rng.choice((2, 3)) if rng.random() < chained else 1))
    return context, " ".join(f"{QUESTION_PROMPT.format(qa['question'])} {qa['answer']}." for qa in turns)[:-1]


def encode_passages(tokenizer, passages: list[tuple[str, str]]):
    """Token ids ``context </s> continuation </s>``, right-padded, and labels (padding ignored)."""
    import torch

    rows = [tokenizer(context, add_special_tokens=False).input_ids + [tokenizer.bos_token_id]
            + tokenizer(continuation, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
            for context, continuation in passages]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for n, row in enumerate(rows):
        ids[n, :len(row)] = torch.tensor(row)
        mask[n, :len(row)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def _loop(trainable, steps: int, batch_loss, lr: float, name: str) -> list[float]:
    import torch

    torch.set_num_threads(1)  # tiny matmuls: a second thread on a shared 2-core machine only contends
    optimizer, schedule = adamw_cosine(decay_groups(trainable, 0.05), lr, steps, max(1, steps // 20),
                                       betas=(0.9, 0.98))
    log = LossLog(steps, 100, name=name)
    for step in range(steps):
        log.add(optimizer_step(batch_loss(step), optimizer, schedule, trainable.parameters()))
    return log.losses


def pretrain_lm(lm, tokenizer, cfg: Blip2TwinConfig, seed: int) -> list[float]:
    """Next-token prediction on text passages of train-split scenes (no image anywhere)."""
    rng = random.Random(seed)
    scenes = generate_scenes(cfg.lm_scenes, config.TOY_TRAIN_SEED + LM_SCENE_SEED_OFFSET + seed, "train",
                             unique=False)
    lm.train()

    def batch_loss(_step):
        ids, mask, labels = encode_passages(tokenizer, [lm_passage(s, rng, cfg.restate_share, cfg.chained_questions)
                                                        for s in rng.sample(scenes, cfg.lm_batch)])
        return lm(input_ids=ids, attention_mask=mask, labels=labels).loss

    losses = _loop(lm, cfg.lm_steps, batch_loss, cfg.lm_lr, "blip2 OPT on text")
    lm.eval()
    return losses


# ----------------------------------------------------------------------------- stage 2: the Q-Former learns
def visual_prefix(model, image_embeds):
    """What ``Blip2ForConditionalGeneration`` puts in the ``<image>`` slots: query tokens -> Q-Former
    (cross-attending to the frozen image features) -> language_projection."""
    queries = model.query_tokens.expand(len(image_embeds), -1, -1)
    query_output = model.qformer(query_embeds=queries, encoder_hidden_states=image_embeds).last_hidden_state
    return model.language_projection(query_output)


def frozen_image_features(vision, scenes: list[Scene], image_processor, batch: int = 256):
    """The frozen encoder's tokens for every scene, computed once (it never changes), in fp16."""
    import torch

    from .corpus import render_pixels

    chunks = []
    with torch.inference_mode():
        for start in range(0, len(scenes), batch):
            pixels = render_pixels(scenes[start:start + batch], image_processor).float()
            chunks.append(vision(pixel_values=pixels).last_hidden_state.to(torch.float16))
    return torch.cat(chunks)


def train_qformer(model, tokenizer, features, scenes: list[Scene], cfg: Blip2TwinConfig, seed: int) -> list[float]:
    """Generative captioning: the frozen LM must write the canonical caption after the visual prefix.

    Only ``qformer``, ``query_tokens`` and ``language_projection`` get gradients.
    """
    import torch

    rng = random.Random(seed)
    model.requires_grad_(False)
    trainable = torch.nn.ModuleDict({"qformer": model.qformer, "projection": model.language_projection})
    trainable.requires_grad_(True)
    model.query_tokens.requires_grad_(True)
    holder = torch.nn.Module()  # one module for the optimiser: the Q-Former side and the query tokens
    holder.parts, holder.query_tokens = trainable, model.query_tokens
    lm = model.language_model
    embed = lm.get_input_embeddings()

    def batch_loss(_step):
        chosen = rng.sample(range(len(scenes)), cfg.qformer_batch)
        prefix = visual_prefix(model, features[chosen].float())
        ids, mask, labels = encode_passages(tokenizer, [("", scenes[i].captions("en")[0]) for i in chosen])
        ones = mask.new_ones(len(chosen), prefix.shape[1])
        return lm(inputs_embeds=torch.cat([prefix, embed(ids)], 1), attention_mask=torch.cat([ones, mask], 1),
                  labels=torch.cat([torch.full_like(ones, -100), labels], 1)).loss

    model.qformer.train()
    losses = _loop(holder, cfg.qformer_steps, batch_loss, cfg.qformer_lr, "blip2 Q-Former")
    model.eval()
    return losses


# ----------------------------------------------------------------------------- the whole recipe
def train_blip2(out_dir: Path, steps: int | None = None, seed: int = 0, cfg: Blip2TwinConfig | None = None):
    """Convert the vision tower, pretrain the LM on text, train the Q-Former on captions, save, measure.

    ``steps`` (if given) replaces both stages' step counts, for quick trial runs.
    """
    import dataclasses

    import torch
    from transformers import BlipForConditionalGeneration, OPTForCausalLM

    cfg = cfg or Blip2TwinConfig()
    if steps:
        cfg = dataclasses.replace(cfg, lm_steps=steps, qformer_steps=steps)
    started = time.time()
    seed_everything(seed)
    processor = new_processor(cfg)
    tokenizer = processor.tokenizer
    captioner_dir = config.model_spec("captioner").toy_path
    vision = blip2_vision_from_blip(BlipForConditionalGeneration.from_pretrained(captioner_dir,
                                                                                 dtype=torch.float32).vision_model)

    lm = OPTForCausalLM(opt_config(tokenizer, cfg))
    print(f"toy BLIP-2: OPT {sum(p.numel() for p in lm.parameters()) / 1e6:.2f} M parameters, vocabulary "
          f"{len(tokenizer)}; pretraining it on text for {cfg.lm_steps} steps", flush=True)
    history = pretrain_lm(lm, tokenizer, cfg, seed)

    model = assemble_blip2(vision, lm, tokenizer, cfg)
    scenes = generate_scenes(cfg.image_scenes, config.TOY_TRAIN_SEED + IMAGE_SCENE_SEED_OFFSET + seed, "train",
                             unique=False)
    features = frozen_image_features(model.vision_model, scenes, processor.image_processor)
    print(f"frozen image features of {len(scenes)} scenes: {tuple(features.shape)} "
          f"({time.time() - started:.0f} s so far)", flush=True)
    history += train_qformer(model, tokenizer, features, scenes, cfg, seed)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out_dir)  # half the size in git; the lessons load fp32
    processor.save_pretrained(out_dir)
    print(f"saved to {out_dir} after {time.time() - started:.0f} s", flush=True)
    figures = measure(out_dir, generate_scenes(200, config.TOY_HELDOUT_SEED + 29, "heldout"))
    print(f"held-out (200 scenes): {figures}", flush=True)
    return history


# ----------------------------------------------------------------------------- measuring
def load_answerer(folder: Path | str | None = None):
    """``vqa.Blip2Answerer`` over the twin (or ``folder``), fp32 on the CPU, as the lessons load it."""
    from ..models import ResolvedModel, Settings
    from ..vqa import Blip2Answerer

    spec = config.model_spec("blip2")
    return Blip2Answerer(ResolvedModel("blip2", spec, str(folder or spec.toy_path), "toy"),
                         Settings(device="cpu"))


def caption_share(answerer, scenes: list[Scene]) -> tuple[float, list[str]]:
    """Share of scenes whose caption (empty prompt) names every object's colour and shape; and the captions."""
    from ..captioning import names_every_object

    captions = answerer.caption_batch([s.render() for s in scenes])
    return sum(names_every_object(c, s, "en") for c, s in zip(captions, scenes)) / len(scenes), captions


def vqa_accuracy_by_kind(answerer, scenes: list[Scene]) -> dict[str, float]:
    """Exact-answer accuracy of every English question of ``scenes``, per kind and overall ("all")."""
    pairs = [(scene, qa) for scene in scenes for qa in english_questions(scene)]
    answers = answerer.answer_batch([s.render() for s, _qa in pairs], [qa["question"] for _s, qa in pairs])
    return _by_kind(answers, [qa for _s, qa in pairs])


def _by_kind(answers: list[str], questions: list[dict]) -> dict[str, float]:
    right: dict[str, list[bool]] = {kind: [] for kind in QUESTION_KINDS}
    for answer, qa in zip(answers, questions):
        right[qa["type"]].append(answer.strip().lower() == qa["answer"])
    right["all"] = [ok for kind in QUESTION_KINDS for ok in right[kind]]
    return {kind: round(sum(oks) / len(oks), 3) for kind, oks in right.items() if oks}


def text_only_vqa_accuracy(answerer, scenes: list[Scene], batch_size: int = 64) -> dict[str, float]:
    """The frozen LM alone, reading each scene's true caption where the image's tokens would be.

    ``caption </s> Question: {q} Answer:``: the layout of its text pretraining. Zero-shot VQA
    can hardly beat this: the Q-Former can at best hand the LM what a perfect description would.
    """
    import torch

    tokenizer, lm = answerer.processor.tokenizer, answerer.model.language_model
    pairs = [(scene, qa) for scene in scenes for qa in english_questions(scene)]
    answers = []
    for start in range(0, len(pairs), batch_size):
        rows = [tokenizer(scene.captions("en")[0], add_special_tokens=False).input_ids + [tokenizer.bos_token_id]
                + tokenizer(QUESTION_PROMPT.format(qa["question"]), add_special_tokens=False).input_ids
                for scene, qa in pairs[start:start + batch_size]]
        width = max(map(len, rows))  # left padding: every prompt ends where its answer starts
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(row)) + row for row in rows])
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
        with torch.inference_mode():
            out = lm.generate(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), max_new_tokens=10,
                              do_sample=False, num_beams=1)
        answers += [text.strip() for text in tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]
    return _by_kind(answers, [qa for _s, qa in pairs])


def measure(folder: Path | str | None, scenes: list[Scene]) -> dict:
    import torch

    torch.set_num_threads(1)
    answerer = load_answerer(folder)
    share, _captions = caption_share(answerer, scenes)
    return {"caption_names_every_object": round(share, 3), "zero_shot_vqa": vqa_accuracy_by_kind(answerer, scenes)}

"""The exercises' checkers hold: for every checked function a list of plausible wrong answers, written the way
learners write them, fails on every one of 50 seeds, while the solution passes on all of them; the untouched
starter is told which lesson step to read (no hint); help is graded (a failure names the property and the lesson
step, ``--hint`` adds a second level) and never prints the solution. Everything runs in-process; no model runs.
"""
from __future__ import annotations

import re
import textwrap

import pytest

from chapter09 import config
from chapter09.exercises import __main__ as cli
from chapter09.exercises import core, i18n

# a wrong answer may divide by zero or turn a tensor that needs a gradient into a float: expected, not news
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")]

SEEDS = range(50)

# Plausible wrong answers, written the way learners write them: exercise -> [(what is wrong, source)].
# Each source is run inside the solution module (its imports are there), replacing the right function.
WRONG: dict[str, list[tuple[str, str]]] = {
    "9.1.1": [
        ("normalises columns, not rows", """
def l2_normalize(vectors):
    vectors = np.asarray(vectors, dtype=float)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=0, keepdims=True), 1e-12)
"""),
        ("NaN on the zero row", """
def l2_normalize(vectors):
    vectors = np.asarray(vectors, dtype=float)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
"""),
        ("divides by the squared length", """
def l2_normalize(vectors):
    vectors = np.asarray(vectors, dtype=float)
    squared = (vectors ** 2).sum(axis=1, keepdims=True)
    return vectors / np.where(squared == 0, 1.0, squared)
"""),
        ("divides by the sum of absolute values (L1)", """
def l2_normalize(vectors):
    vectors = np.asarray(vectors, dtype=float)
    total = np.abs(vectors).sum(axis=1, keepdims=True)
    return vectors / np.where(total == 0, 1.0, total)
"""),
        ("normalises in place, changing the caller's array", """
def l2_normalize(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms == 0, 1.0, norms)
    return vectors
"""),
        ("divides the whole matrix by one norm", """
def l2_normalize(vectors):
    vectors = np.asarray(vectors, dtype=float)
    norm = np.linalg.norm(vectors)
    return vectors / norm if norm else vectors
"""),
    ],
    "9.1.2": [
        ("raw dot product", """
def cosine_similarity_matrix(image_embeddings, text_embeddings):
    return image_embeddings @ text_embeddings.T
"""),
        ("normalises the images only", """
def cosine_similarity_matrix(image_embeddings, text_embeddings):
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    return images @ text_embeddings.T
"""),
        ("normalises columns", """
def cosine_similarity_matrix(image_embeddings, text_embeddings):
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=0, keepdims=True)
    texts = text_embeddings / np.linalg.norm(text_embeddings, axis=0, keepdims=True)
    return images @ texts.T
"""),
        ("texts x images (transposed)", """
def cosine_similarity_matrix(image_embeddings, text_embeddings):
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    texts = text_embeddings / np.linalg.norm(text_embeddings, axis=1, keepdims=True)
    return texts @ images.T
"""),
        ("divides by each matrix's overall norm", """
def cosine_similarity_matrix(image_embeddings, text_embeddings):
    return (image_embeddings / np.linalg.norm(image_embeddings)) @ (text_embeddings / np.linalg.norm(text_embeddings)).T
"""),
    ],
    "9.1.3": [
        ("pads on the left", """
def pad_batch(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = np.array([[pad_id] * (length - len(s)) + list(s) for s in sequences], dtype=np.int64)
    mask = np.array([[0] * (length - len(s)) + [1] * len(s) for s in sequences], dtype=np.int64)
    return ids, mask
"""),
        ("mask inverted (1 on padding)", """
def pad_batch(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.ones((len(sequences), length), dtype=np.int64)
    for row, s in enumerate(sequences):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 0
    return ids, mask
"""),
        ("length of max(sequences), the lexicographically largest list", """
def pad_batch(sequences, pad_id):
    length = len(max(sequences))
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.int64)
    for row, s in enumerate(sequences):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 1
    return ids, mask
"""),
        ("pads with 0 instead of pad_id", """
def pad_batch(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = np.zeros((len(sequences), length), dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.int64)
    for row, s in enumerate(sequences):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 1
    return ids, mask
"""),
        ("float mask (np.zeros' default dtype)", """
def pad_batch(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), length))
    for row, s in enumerate(sequences):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 1
    return ids, mask
"""),
        ("boolean mask", """
def pad_batch(sequences, pad_id):
    length = max(len(s) for s in sequences)
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    for row, s in enumerate(sequences):
        ids[row, :len(s)] = s
    mask = np.arange(length)[None, :] < np.array([len(s) for s in sequences])[:, None]
    return ids, mask
"""),
    ],
    "9.1.4": [
        ("forgets to scale 0-255 to 0-1", """
def normalize_pixels(image, mean, std):
    image = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
    return (image - np.reshape(mean, (3, 1, 1)).astype(np.float32)) / np.reshape(std, (3, 1, 1)).astype(np.float32)
"""),
        ("reshape instead of transpose", """
def normalize_pixels(image, mean, std):
    h, w, _ = image.shape
    scaled = (np.asarray(image, dtype=np.float32) / 255.0).reshape(3, h, w)
    return (scaled - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
"""),
        ("channels last (no transpose)", """
def normalize_pixels(image, mean, std):
    scaled = np.asarray(image, dtype=np.float32) / 255.0
    return (scaled - np.float32(mean)) / np.float32(std)
"""),
        ("transpose(2, 1, 0): channels x width x height", """
def normalize_pixels(image, mean, std):
    scaled = np.asarray(image, dtype=np.float32).transpose(2, 1, 0) / 255.0
    return (scaled - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
"""),
        ("float64 result (image / 255.0 on uint8)", """
def normalize_pixels(image, mean, std):
    scaled = image.transpose(2, 0, 1) / 255.0
    return (scaled - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1))
"""),
        ("divides by std before subtracting the mean", """
def normalize_pixels(image, mean, std):
    scaled = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return scaled / np.float32(std).reshape(3, 1, 1) - np.float32(mean).reshape(3, 1, 1)
"""),
        ("channel statistics reversed (BGR habits)", """
def normalize_pixels(image, mean, std):
    scaled = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (scaled - np.float32(mean[::-1]).reshape(3, 1, 1)) / np.float32(std[::-1]).reshape(3, 1, 1)
"""),
    ],
    "9.2.1": [
        ("ranks along the wrong axis (columns)", """
def recall_at_k(scores, relevant, k):
    ranked = np.argsort(-np.asarray(scores), axis=0)[:k, :].T
    return float(np.mean([relevant[q] in ranked[q % len(ranked)] for q in range(len(relevant))]))
"""),
        ("off by one: only the k-1 best count", """
def recall_at_k(scores, relevant, k):
    ranked = np.argsort(-np.asarray(scores), axis=1)[:, :k - 1]
    return float(np.mean([relevant[q] in ranked[q] for q in range(len(ranked))]))
"""),
        ("off by one: the k+1 best count", """
def recall_at_k(scores, relevant, k):
    ranked = np.argsort(-np.asarray(scores), axis=1)[:, :k + 1]
    return float(np.mean([relevant[q] in ranked[q] for q in range(len(ranked))]))
"""),
        ("sorts ascending: the k worst candidates", """
def recall_at_k(scores, relevant, k):
    ranked = np.argsort(scores, axis=1)[:, :k]
    return float(np.mean([relevant[q] in ranked[q] for q in range(len(ranked))]))
"""),
        ("recall@1 whatever k is (argmax)", """
def recall_at_k(scores, relevant, k):
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(relevant)))
"""),
        ("divides the hits by the number of candidates", """
def recall_at_k(scores, relevant, k):
    ranked = np.argsort(-np.asarray(scores), axis=1)[:, :k]
    hits = sum(relevant[q] in ranked[q] for q in range(len(ranked)))
    return hits / scores.shape[1]
"""),
    ],
    "9.2.2": [
        ("one prompt per class, no ensemble", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    names = list(prompt_embeddings)
    first = np.stack([prompt_embeddings[n][0] for n in names])
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    return [names[i] for i in (image_embeddings @ first.T).argmax(axis=1)]
"""),
        ("averages raw vectors, not directions", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    names = list(prompt_embeddings)
    centroids = np.stack([prompt_embeddings[n].mean(axis=0) for n in names])
    centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    return [names[i] for i in (image_embeddings @ centroids.T).argmax(axis=1)]
"""),
        ("averages unit prompt vectors without normalising the mean again", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    names = list(prompt_embeddings)
    units = {n: p / np.linalg.norm(p, axis=1, keepdims=True) for n, p in prompt_embeddings.items()}
    centroids = np.stack([units[n].mean(axis=0) for n in names])
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    return [names[i] for i in (images @ centroids.T).argmax(axis=1)]
"""),
        ("averages the cosine scores of the prompts", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    names = list(prompt_embeddings)
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    scores = []
    for n in names:
        p = prompt_embeddings[n] / np.linalg.norm(prompt_embeddings[n], axis=1, keepdims=True)
        scores.append((images @ p.T).mean(axis=1))
    return [names[i] for i in np.stack(scores, axis=1).argmax(axis=1)]
"""),
        ("the best single prompt of each class (max, not mean)", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    names = list(prompt_embeddings)
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    scores = []
    for n in names:
        p = prompt_embeddings[n] / np.linalg.norm(prompt_embeddings[n], axis=1, keepdims=True)
        scores.append((images @ p.T).max(axis=1))
    return [names[i] for i in np.stack(scores, axis=1).argmax(axis=1)]
"""),
        ("returns class indices, not names", """
def zero_shot_classify(image_embeddings, prompt_embeddings):
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)
    centroids = unit(np.stack([unit(p).mean(axis=0) for p in prompt_embeddings.values()]))
    return list((unit(image_embeddings) @ centroids.T).argmax(axis=1))
"""),
    ],
    "9.2.3": [
        ("image -> text only", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    return F.cross_entropy(logits, torch.arange(len(logits)))
"""),
        ("logit_scale used as the scale itself (no exp)", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    t = torch.arange(len(logits))
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
"""),
        ("temperature through a Python float: no gradient reaches logit_scale", """
def contrastive_loss(image_features, text_features, logit_scale):
    import math
    import torch
    import torch.nn.functional as F
    scale = min(math.exp(float(logit_scale)), 100)
    logits = scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    t = torch.arange(len(logits))
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
"""),
        ("no cap at 100", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale.exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    t = torch.arange(len(logits))
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
"""),
        ("caps logit_scale before exp", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale.clamp(max=100).exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    t = torch.arange(len(logits))
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
"""),
        ("features not normalised", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale.exp().clamp(max=100) * image_features @ text_features.T
    t = torch.arange(len(logits))
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
"""),
        ("the two directions summed, not averaged", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    import torch.nn.functional as F
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    t = torch.arange(len(logits))
    return F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)
"""),
        ("computed in NumPy and wrapped in torch.tensor", """
def contrastive_loss(image_features, text_features, logit_scale):
    import torch
    i = image_features.detach().numpy(); t = text_features.detach().numpy()
    i = i / np.linalg.norm(i, axis=1, keepdims=True); t = t / np.linalg.norm(t, axis=1, keepdims=True)
    logits = min(np.exp(logit_scale.item()), 100) * i @ t.T
    def ce(x):
        x = x - x.max(axis=1, keepdims=True)
        return -np.mean(np.diag(x) - np.log(np.exp(x).sum(axis=1)))
    return torch.tensor((ce(logits) + ce(logits.T)) / 2, dtype=torch.float32)
"""),
    ],
    "9.3.1": [
        ("dot product, not cosine", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    scores = query_embeddings @ corpus_embeddings.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[:top_k]] for row in scores]
"""),
        ("the best last (ascending argsort)", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    q = query_embeddings / np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    c = corpus_embeddings / np.linalg.norm(corpus_embeddings, axis=1, keepdims=True)
    scores = q @ c.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(row)[-top_k:]] for row in scores]
"""),
        ("normalises the corpus only: right order, scores not cosines", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    c = corpus_embeddings / np.linalg.norm(corpus_embeddings, axis=1, keepdims=True)
    scores = query_embeddings @ c.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[:top_k]] for row in scores]
"""),
        ("normalises the queries only", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    q = query_embeddings / np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    scores = q @ corpus_embeddings.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[:top_k]] for row in scores]
"""),
        ("skips the best hit (as when searching a corpus for itself)", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    q = query_embeddings / np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    c = corpus_embeddings / np.linalg.norm(corpus_embeddings, axis=1, keepdims=True)
    scores = q @ c.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[1:top_k + 1]] for row in scores]
"""),
        ("one list per corpus entry (matrix transposed)", """
def semantic_search(query_embeddings, corpus_embeddings, top_k):
    q = query_embeddings / np.linalg.norm(query_embeddings, axis=1, keepdims=True)
    c = corpus_embeddings / np.linalg.norm(corpus_embeddings, axis=1, keepdims=True)
    scores = c @ q.T
    return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[:top_k]] for row in scores]
"""),
    ],
    "9.3.2": [
        ("drops the short last batch", """
def encode_in_batches(encode, items, batch_size):
    return np.concatenate([encode(items[i:i + batch_size]) for i in range(0, len(items) - batch_size + 1, batch_size)])
"""),
        ("one batch too many: an empty call when the items divide evenly", """
def encode_in_batches(encode, items, batch_size):
    batches = [items[i * batch_size:(i + 1) * batch_size] for i in range(len(items) // batch_size + 1)]
    return np.concatenate([encode(batch) for batch in batches])
"""),
        ("np.stack of the batches", """
def encode_in_batches(encode, items, batch_size):
    return np.stack([encode(items[i:i + batch_size]) for i in range(0, len(items), batch_size)])
"""),
        ("encodes everything at once", """
def encode_in_batches(encode, items, batch_size):
    return np.asarray(encode(items))
"""),
        ("one item at a time", """
def encode_in_batches(encode, items, batch_size):
    return np.concatenate([encode([item]) for item in items])
"""),
        ("slices of batch_size - 1 (an off-by-one end)", """
def encode_in_batches(encode, items, batch_size):
    return np.concatenate([encode(items[i:i + batch_size - 1]) for i in range(0, len(items), batch_size)])
"""),
        ("returns the list of batch arrays", """
def encode_in_batches(encode, items, batch_size):
    return [encode(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
"""),
    ],
    "9.3.3": [
        ("student pulled towards student", """
def distillation_loss(student_english, student_translated, teacher_english):
    import torch.nn.functional as F
    return F.mse_loss(student_english, teacher_english) + F.mse_loss(student_translated, student_english)
"""),
        ("computed in NumPy and wrapped in torch.tensor", """
def distillation_loss(student_english, student_translated, teacher_english):
    import torch
    en, zh, teacher = (x.detach().numpy() for x in (student_english, student_translated, teacher_english))
    return torch.tensor(((en - teacher) ** 2).mean() + ((zh - teacher) ** 2).mean())
"""),
        ("sum of squares, not the mean", """
def distillation_loss(student_english, student_translated, teacher_english):
    return ((student_english - teacher_english) ** 2).sum() + ((student_translated - teacher_english) ** 2).sum()
"""),
        ("the mean of the two terms, not their sum", """
def distillation_loss(student_english, student_translated, teacher_english):
    import torch.nn.functional as F
    return (F.mse_loss(student_english, teacher_english) + F.mse_loss(student_translated, teacher_english)) / 2
"""),
        ("squared distance per sentence, averaged over sentences", """
def distillation_loss(student_english, student_translated, teacher_english):
    return (((student_english - teacher_english) ** 2).sum(dim=1).mean()
            + ((student_translated - teacher_english) ** 2).sum(dim=1).mean())
"""),
        ("cosine distance instead of squared error", """
def distillation_loss(student_english, student_translated, teacher_english):
    import torch.nn.functional as F
    return ((1 - F.cosine_similarity(student_english, teacher_english)).mean()
            + (1 - F.cosine_similarity(student_translated, teacher_english)).mean())
"""),
        ("the translation's student detached (only English learns)", """
def distillation_loss(student_english, student_translated, teacher_english):
    import torch.nn.functional as F
    return F.mse_loss(student_english, teacher_english) + F.mse_loss(student_translated.detach(), teacher_english)
"""),
    ],
    "9.4.1": [
        ("keeps the first turns, and all of them for 0", """
def chat_prompt(history, question, max_turns=3):
    turns = [f"Question: {q} Answer: {a}." for q, a in history[:max_turns or None]]
    return " ".join(turns + [f"Question: {question} Answer:"])
"""),
        ("history[-max_turns:] keeps everything when max_turns is 0", """
def chat_prompt(history, question, max_turns=3):
    turns = [f"Question: {q} Answer: {a}." for q, a in history[-max_turns:]]
    return " ".join(turns + [f"Question: {question} Answer:"])
"""),
        ("newest turn first", """
def chat_prompt(history, question, max_turns=3):
    kept = history[-max_turns:] if max_turns else []
    turns = [f"Question: {q} Answer: {a}." for q, a in reversed(kept)]
    return " ".join(turns + [f"Question: {question} Answer:"])
"""),
        ("no '.' after an answer", """
def chat_prompt(history, question, max_turns=3):
    kept = history[-max_turns:] if max_turns else []
    turns = [f"Question: {q} Answer: {a}" for q, a in kept]
    return " ".join(turns + [f"Question: {question} Answer:"])
"""),
        ("turns joined by newlines", """
def chat_prompt(history, question, max_turns=3):
    kept = history[-max_turns:] if max_turns else []
    return "\\n".join([f"Question: {q} Answer: {a}." for q, a in kept] + [f"Question: {question} Answer:"])
"""),
        ("history[len(history) - max_turns:] goes negative on a short history", """
def chat_prompt(history, question, max_turns=3):
    kept = history[len(history) - max_turns:] if max_turns else []
    return " ".join([f"Question: {q} Answer: {a}." for q, a in kept] + [f"Question: {question} Answer:"])
"""),
    ],
    "9.4.2a": [
        ("GB, not GiB", """
def weights_gib(n_parameters, dtype):
    return n_parameters * BYTES_PER_PARAMETER[dtype] / 1e9
"""),
        ("bits, not bytes", """
def weights_gib(n_parameters, dtype):
    bits = {"float32": 32, "bfloat16": 16, "float16": 16, "int8": 8}[dtype]
    return n_parameters * bits / 2**30
"""),
        ("MiB, not GiB", """
def weights_gib(n_parameters, dtype):
    return n_parameters * BYTES_PER_PARAMETER[dtype] / 2**20
"""),
        ("bfloat16 taken for 4 bytes (only float16 halves)", """
def weights_gib(n_parameters, dtype):
    return n_parameters * {"float32": 4, "float16": 2, "int8": 1}.get(dtype, 4) / 2**30
"""),
        ("1024**3 written as 1024*3", """
def weights_gib(n_parameters, dtype):
    return n_parameters * BYTES_PER_PARAMETER[dtype] / (1024 * 3)
"""),
    ],
    "9.4.2b": [
        ("forgets the headroom", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * BYTES_PER_PARAMETER[dtype] <= free_bytes
"""),
        ("strict <: a model needing exactly the free memory is refused", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * BYTES_PER_PARAMETER[dtype] * headroom < free_bytes
"""),
        ("compares GiB with bytes", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * BYTES_PER_PARAMETER[dtype] / 2**30 * headroom <= free_bytes
"""),
        ("the headroom hard-coded", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * BYTES_PER_PARAMETER[dtype] * 1.25 <= free_bytes
"""),
        ("headroom added, not multiplied", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * BYTES_PER_PARAMETER[dtype] + headroom <= free_bytes
"""),
        ("counts parameters, not bytes", """
def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):
    return n_parameters * headroom <= free_bytes
"""),
    ],
    "9.4.3": [
        ("compares the raw strings", """
def vqa_accuracy(answers, truths, kinds):
    right = [a == t for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    return sum(right) / len(right), {k: sum(v) / len(v) for k, v in by_kind.items()}
"""),
        ("strip().lower(): repeated spaces inside still differ", """
def vqa_accuracy(answers, truths, kinds):
    right = [a.strip().lower() == t.strip().lower() for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    return sum(right) / len(right), {k: sum(v) / len(v) for k, v in by_kind.items()}
"""),
        ("normalises the answer only", """
def vqa_accuracy(answers, truths, kinds):
    right = [" ".join(a.split()).lower() == t for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    return sum(right) / len(right), {k: sum(v) / len(v) for k, v in by_kind.items()}
"""),
        ("removes every space ('acat' == 'a cat')", """
def vqa_accuracy(answers, truths, kinds):
    right = [a.replace(" ", "").lower() == t.replace(" ", "").lower() for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    return sum(right) / len(right), {k: sum(v) / len(v) for k, v in by_kind.items()}
"""),
        ("overall = the mean of the kinds' accuracies", """
def vqa_accuracy(answers, truths, kinds):
    right = [" ".join(a.split()).lower() == " ".join(t.split()).lower() for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    by_kind = {k: sum(v) / len(v) for k, v in by_kind.items()}
    return sum(by_kind.values()) / len(by_kind), by_kind
"""),
        ("a kind's right answers divided by all questions", """
def vqa_accuracy(answers, truths, kinds):
    right = [" ".join(a.split()).lower() == " ".join(t.split()).lower() for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind[kind] = by_kind.get(kind, 0) + ok
    return sum(right) / len(right), {k: v / len(right) for k, v in by_kind.items()}
"""),
    ],
    "9.5.1": [
        ("image positions are targets (label 0)", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 1),
            "attention_mask": torch.cat([attention_mask.new_ones(b, n), attention_mask], 1),
            "labels": torch.cat([labels.new_zeros(b, n), labels], 1)}
"""),
        ("words before the image", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    return {"inputs_embeds": torch.cat([word_embeddings, visual_tokens], 1),
            "attention_mask": torch.cat([attention_mask, attention_mask.new_ones(b, n)], 1),
            "labels": torch.cat([labels, labels.new_full((b, n), -100)], 1)}
"""),
        ("concatenated along the batch axis", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 0),
            "attention_mask": torch.cat([attention_mask.new_ones(b, n), attention_mask], 0),
            "labels": torch.cat([labels.new_full((b, n), -100), labels], 0)}
"""),
        ("image positions masked out (mask 0)", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 1),
            "attention_mask": torch.cat([attention_mask.new_zeros(b, n), attention_mask], 1),
            "labels": torch.cat([labels.new_full((b, n), -100), labels], 1)}
"""),
        ("float mask for the image (torch.ones' default dtype)", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 1),
            "attention_mask": torch.cat([torch.ones(b, n), attention_mask], 1),
            "labels": torch.cat([torch.full((b, n), -100), labels], 1)}
"""),
        ("the caption's padding made a target again", """
def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):
    b, n = visual_tokens.shape[:2]
    caption = torch.where(labels == -100, torch.zeros_like(labels), labels)
    return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 1),
            "attention_mask": torch.cat([attention_mask.new_ones(b, n), attention_mask], 1),
            "labels": torch.cat([labels.new_full((b, n), -100), caption], 1)}
"""),
    ],
    "9.5.2": [
        ("masks by the pad id, which is also a real id", """
def caption_labels(input_ids, attention_mask):
    return input_ids.masked_fill(input_ids == 0, -100)
"""),
        ("changes input_ids in place", """
def caption_labels(input_ids, attention_mask):
    return input_ids.masked_fill_(attention_mask == 0, -100)
"""),
        ("labels = input_ids, then indexed assignment (the same tensor)", """
def caption_labels(input_ids, attention_mask):
    labels = input_ids
    labels[attention_mask == 0] = -100
    return labels
"""),
        ("mask condition inverted", """
def caption_labels(input_ids, attention_mask):
    return input_ids.masked_fill(attention_mask == 1, -100)
"""),
        ("shifts the labels by one (the model does that itself)", """
def caption_labels(input_ids, attention_mask):
    return input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
"""),
        ("-1 for padding, not -100", """
def caption_labels(input_ids, attention_mask):
    return input_ids.masked_fill(attention_mask == 0, -1)
"""),
    ],
    "9.5.3": [
        ("one scale for the whole tensor", """
def quantize_int8(weight):
    scale = weight.abs().max() / 127
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale.repeat(len(weight))
"""),
        ("truncates instead of rounding", """
def quantize_int8(weight):
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    return (weight / scale[:, None]).trunc().to(torch.int8), scale
"""),
        ("a scale per column", """
def quantize_int8(weight):
    scale = weight.abs().amax(dim=0).clamp(min=1e-12) / 127
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale
"""),
        ("the row's largest value, not its largest magnitude", """
def quantize_int8(weight):
    scale = weight.amax(dim=1).clamp(min=1e-12) / 127
    return torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale
"""),
        ("divides by 128", """
def quantize_int8(weight):
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 128
    return torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale
"""),
        ("q left as float (never converted to int8)", """
def quantize_int8(weight):
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    return torch.round(weight / scale[:, None]).clamp(-127, 127), scale
"""),
        ("the unsigned range 255", """
def quantize_int8(weight):
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 255
    return torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale
"""),
    ],
    "9.6.1": [
        ("the mean over all runs, warm-up timed", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    started = clock()
    for _ in range(warmup + repeats):
        run(items)
    return (clock() - started) / (warmup + repeats) / len(items)
"""),
        ("the upper middle element as the median", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    for _ in range(warmup):
        run(items)
    times = []
    for _ in range(repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return sorted(times)[len(times) // 2] / len(items)
"""),
        ("the lower middle element as the median", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    for _ in range(warmup):
        run(items)
    times = []
    for _ in range(repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return sorted(times)[(len(times) - 1) // 2] / len(items)
"""),
        ("the mean of the timed runs", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    for _ in range(warmup):
        run(items)
    started = clock()
    for _ in range(repeats):
        run(items)
    return (clock() - started) / repeats / len(items)
"""),
        ("the warm-up runs timed too", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    times = []
    for _ in range(warmup + repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return statistics.median(times) / len(items)
"""),
        ("per batch, not per item", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    for _ in range(warmup):
        run(items)
    times = []
    for _ in range(repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return statistics.median(times)
"""),
        ("the fastest run", """
def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):
    for _ in range(warmup):
        run(items)
    times = []
    for _ in range(repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return min(times) / len(items)
"""),
    ],
    "9.6.2": [
        ("the fastest, whatever its quality", """
def choose_model(rows, min_quality, max_memory_mb):
    measured = [r for r in rows if "ms_per_item" in r and r["memory_mb"] <= max_memory_mb]
    return min(measured, key=lambda r: r["ms_per_item"])["model"] if measured else None
"""),
        ("the smallest, not the fastest", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and r["quality"] >= min_quality and r["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda r: r["memory_mb"])["model"] if fitting else None
"""),
        ("strict limits: a model exactly at a limit is refused", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and r["quality"] > min_quality and r["memory_mb"] < max_memory_mb]
    return min(fitting, key=lambda r: r["ms_per_item"])["model"] if fitting else None
"""),
        ("an unmeasured model counted as taking 0 ms", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if r.get("quality", 0) >= min_quality and r["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda r: r.get("ms_per_item", 0))["model"] if fitting else None
"""),
        ("the best quality among those that fit", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and r["quality"] >= min_quality and r["memory_mb"] <= max_memory_mb]
    return max(fitting, key=lambda r: r["quality"])["model"] if fitting else None
"""),
        ("returns the row, not the name", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and r["quality"] >= min_quality and r["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda r: r["ms_per_item"]) if fitting else None
"""),
        ("min() of an empty list when nothing fits", """
def choose_model(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and r["quality"] >= min_quality and r["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda r: r["ms_per_item"])["model"]
"""),
    ],
    "9.7.1": [
        ("places counted from 0 (enumerate's default)", """
def reciprocal_rank_fusion(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
"""),
        ("1 / place, k forgotten", """
def reciprocal_rank_fusion(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / place
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
"""),
        ("the best single place (max), not the sum", """
def reciprocal_rank_fusion(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = max(scores.get(item, 0.0), 1.0 / (k + place))
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
"""),
        ("only items every ranking holds", """
def reciprocal_rank_fusion(rankings, k=60):
    common = set(rankings[0]).intersection(*rankings[1:])
    scores = {item: sum(1.0 / (k + r.index(item) + 1) for r in rankings) for item in common}
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
"""),
        ("sorted worst first", """
def reciprocal_rank_fusion(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return sorted(scores.items(), key=lambda pair: pair[1])
"""),
        ("the scores in the order the items were met (never sorted)", """
def reciprocal_rank_fusion(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return list(scores.items())
"""),
        ("the mean over the rankings that hold the item", """
def reciprocal_rank_fusion(rankings, k=60):
    scores, counts = {}, {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
            counts[item] = counts.get(item, 0) + 1
    return sorted(((item, s / counts[item]) for item, s in scores.items()), key=lambda pair: pair[1], reverse=True)
"""),
        ("default k of 1", """
def reciprocal_rank_fusion(rankings, k=1):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
"""),
    ],
    "9.7.2": [
        ("post-filter: the unfiltered top k, then the non-matching dropped", """
def filtered_top_k(scores, mask, k):
    top = np.argsort(-scores)[:k]
    return top[mask[top]]
"""),
        ("non-matching rows set to 0 (cosines can be negative)", """
def filtered_top_k(scores, mask, k):
    kept = np.where(mask, scores, 0.0)
    top = np.argsort(-kept)[:k]
    return top[:min(k, int(mask.sum()))]
"""),
        ("places in the filtered array, not rows of scores", """
def filtered_top_k(scores, mask, k):
    return np.argsort(-scores[mask])[:k]
"""),
        ("non-matching rows set to -inf: always k rows back", """
def filtered_top_k(scores, mask, k):
    kept = np.where(mask, scores, -np.inf)
    return np.argsort(-kept)[:k]
"""),
        ("argpartition for k rows, which fewer matching rows cannot give", """
def filtered_top_k(scores, mask, k):
    rows = np.flatnonzero(mask)
    part = np.argpartition(-scores[rows], k - 1)[:k]
    best = part[np.argsort(-scores[rows][part])]
    return rows[best]
"""),
        ("the k best matching rows, worst first", """
def filtered_top_k(scores, mask, k):
    rows = np.flatnonzero(mask)
    return rows[np.argsort(-scores[rows])[:k]][::-1]
"""),
        ("the mask used to index the sorted order", """
def filtered_top_k(scores, mask, k):
    order = np.argsort(-scores)
    return order[mask][:k]
"""),
    ],
    "9.7.3": [
        ("the second stage run on every candidate", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    second = second_stage_fn(candidates)
    order = sorted(range(len(candidates)), key=lambda i: second[i], reverse=True)
    return [candidates[i] for i in order]
"""),
        ("the first n candidates as given (assumes they are sorted)", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    shortlist = list(candidates[:n])
    second = second_stage_fn(shortlist)
    order = sorted(range(len(shortlist)), key=lambda j: second[j], reverse=True)
    return [shortlist[j] for j in order] + list(candidates[n:])
"""),
        ("only the re-ranked shortlist comes back", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = second_stage_fn(shortlist)
    return [shortlist[j] for j in sorted(range(len(shortlist)), key=lambda j: second[j], reverse=True)]
"""),
        ("the rest in the order they were given", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = second_stage_fn(shortlist)
    reordered = [shortlist[j] for j in sorted(range(len(shortlist)), key=lambda j: second[j], reverse=True)]
    return reordered + [c for c in candidates if c not in shortlist]
"""),
        ("first- and second-stage scores added", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    top = by_first[:n]
    second = second_stage_fn([candidates[i] for i in top])
    order = sorted(range(len(top)), key=lambda j: first_stage_scores[top[j]] + second[j], reverse=True)
    return [candidates[top[j]] for j in order] + [candidates[i] for i in by_first[n:]]
"""),
        ("the second stage called once per item", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = {c: second_stage_fn([c])[0] for c in shortlist}
    return sorted(shortlist, key=lambda c: second[c], reverse=True) + [candidates[i] for i in by_first[n:]]
"""),
        ("sorted as (score, item) pairs: equal scores ordered by item, backwards", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = second_stage_fn(shortlist)
    return [c for _, c in sorted(zip(second, shortlist), reverse=True)] + [candidates[i] for i in by_first[n:]]
"""),
        ("the shortlist worst first", """
def rerank(candidates, first_stage_scores, second_stage_fn, n):
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = second_stage_fn(shortlist)
    return sorted(shortlist, key=lambda c: second[shortlist.index(c)]) + [candidates[i] for i in by_first[n:]]
"""),
    ],
}


CHECKS = {check.exercise: (section, index, check)
          for section in core.SECTIONS for index, check in enumerate(core.checks_for(section))}


def _function(section: str, name: str, source: str = ""):
    """The solution's ``name``, or the wrong ``source`` defined over it inside the solution module (so it
    finds the module's imports and constants, as a learner's file would)."""
    module = core.load_module(core.solution_path(section))
    if source:
        exec(textwrap.dedent(source), module.__dict__)
    return getattr(module, name)


def test_every_checked_function_has_at_least_four_wrong_answers():
    assert set(WRONG) == set(CHECKS)
    short = {exercise: len(answers) for exercise, answers in WRONG.items() if len(answers) < 4}
    assert not short, short


@pytest.mark.parametrize("exercise", sorted(CHECKS))
def test_the_solution_passes_on_every_seed(exercise):
    section, index, check = CHECKS[exercise]
    function = _function(section, check.function)
    failures = [(seed, outcome.message) for seed in SEEDS
                if not (outcome := core.run_one(check, function, seed, index)).passed]
    assert not failures, failures[:3]


@pytest.mark.parametrize("exercise", sorted(CHECKS))
def test_every_wrong_answer_fails_on_every_seed(exercise):
    section, index, check = CHECKS[exercise]
    lucky = {}
    for what, source in WRONG[exercise]:
        function = _function(section, check.function, source)
        passed = [seed for seed in SEEDS if core.run_one(check, function, seed, index).passed]
        if passed:
            lucky[what] = passed
    assert not lucky, f"wrong answers that passed, with the seeds they passed on: {lucky}"


@pytest.mark.parametrize("section", core.SECTIONS)
def test_the_untouched_starter_is_sent_to_its_lesson_step_without_a_hint(section):
    outcomes = core.run_checks(section, core.load_module(core.starter_path(section)), seed=7)
    assert outcomes and not any(o.passed for o in outcomes)
    assert {o.message for o in outcomes} == {core.NOT_WRITTEN}
    assert all(o.read.startswith("lesson 9.") and not o.hint for o in outcomes)


def _steps(number: str) -> set[str]:
    """The numbered step headings of a lesson script: {"2 (The diagonal is what CLIP was trained for)", ...}."""
    script = next(config.PACKAGE_DIR.glob(f"{number}_*.py"))
    return {f"{n} ({title.replace('`', '').strip()})"
            for n, title in re.findall(r"^# ## (\d+)\. (.+)$", script.read_text(encoding="utf-8"), re.M)}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
def test_each_check_points_at_a_lesson_step_that_exists(exercise):
    read = i18n.render(CHECKS[exercise][2].read, "en")  # a step id in i18n.STEPS, written out in English
    match = re.fullmatch(r"lesson (9\.\d), step (.+)", read)
    assert match and match.group(2) in _steps(match.group(1)), (read, _steps(match.group(1)) if match else None)


def _solution_lines(section: str) -> list[str]:
    return [line.strip() for line in core.solution_path(section).read_text().splitlines()
            if line.startswith("    ") and len(line.strip()) > 20 and not line.strip().startswith(("#", '"'))]


@pytest.mark.parametrize("section", core.SECTIONS)
def test_no_hint_or_message_quotes_the_solution(section):
    help_texts = [i18n.render(text, lang) for check in core.checks_for(section) for text in (check.read, check.hint)
                  for lang in i18n.LANGS]
    for exercise, answers in WRONG.items():
        if CHECKS[exercise][0] == section:
            for _, source in answers:
                for lang in i18n.LANGS:
                    outcome = core.run_one(CHECKS[exercise][2], _function(section, CHECKS[exercise][2].function,
                                                                          source), seed=0, index=CHECKS[exercise][1],
                                           lang=lang)
                    help_texts += [outcome.message, outcome.hint]
    said = "\n".join(help_texts)
    assert not [line for line in _solution_lines(section) if line in said]


def test_help_is_graded_from_the_command_line(tmp_path, capsys):
    folder = str(tmp_path / "mine")
    assert cli.main(["start", "9.2", "--dir", folder]) == 0
    assert cli.main(["start", "9.2", "--dir", folder]) == 1  # never overwrites a learner's work
    capsys.readouterr()

    # level 0: nothing written yet -> which lesson step to read, no hint
    assert cli.main(["check", "9.2", "--dir", folder, "--seed", "5"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 3 and out.count("not written yet") == 3 and "0 of 3 passed" in out
    assert "read first: lesson 9.2, step 2 (The diagonal is what CLIP was trained for)" in out
    assert "hint:" not in out and "--hint" not in out

    # level 1: a real failure -> the property that failed and where the lesson teaches it
    mine = tmp_path / "mine" / "ex9_2.py"
    solution = core.solution_path("9.2").read_text()
    mine.write_text(solution + textwrap.dedent(WRONG["9.2.3"][2][1]))  # the temperature through a float
    assert cli.main(["check", "9.2", "--dir", folder, "--seed", "5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  9.2.3" in out and "no gradient reaches logit_scale" in out and "2 of 3 passed" in out
    assert "the idea is in lesson 9.2, step 2" in out and "hint:" not in out
    assert f"check 9.2 --dir {folder} --seed 5 --hint" in out

    # level 2: --hint adds a more specific hint, still not the steps of the solution
    assert cli.main(["check", "9.2", "--dir", folder, "--seed", "5", "--hint"]) == 1
    out = capsys.readouterr().out
    assert out.count("hint:") == 1 and "float()" in out
    assert not [line for line in _solution_lines("9.2") if line in out]

    mine.write_text(solution)
    assert cli.main(["check", "9.2", "--dir", folder]) == 0
    assert "3 of 3 passed" in capsys.readouterr().out

    mine.write_text("def recall_at_k(:\n")
    assert cli.main(["check", "9.2", "--dir", folder]) == 2
    assert "cannot be imported: SyntaxError" in capsys.readouterr().out


def test_a_crash_in_the_learners_code_is_reported_with_its_line(tmp_path):
    path = tmp_path / "ex9_6.py"
    path.write_text("def latency_per_item(run, items, warmup=1, repeats=3, clock=None):\n    return 1 / 0\n"
                    "def choose_model(rows, min_quality, max_memory_mb):\n    raise NotImplementedError\n")
    first, second = core.run_checks("9.6", core.load_module(path), seed=3)
    assert not first.passed and "ZeroDivisionError" in first.message and "line 2" in first.message
    assert first.read and first.hint
    assert second.message == core.NOT_WRITTEN and not second.hint


def test_lesson_9_4_scores_answers_the_way_exercise_9_4_3_does():
    """One normaliser: the lesson's scoring cell and the checker's reference both use chapter09.vqa's, and the
    solution agrees with it on the cases that separate it from strip().lower()."""
    from chapter09 import vqa

    lesson = next(config.PACKAGE_DIR.glob("9.4_*.py")).read_text(encoding="utf-8")
    assert "vqa.answers_match(" in lesson and ".strip().lower() ==" not in lesson
    pairs = [("  Two ", "two", True), ("a  cat", "A cat", True), ("acat", "a cat", False), ("RED", "red", True)]
    assert [vqa.answers_match(a, t) for a, t, _ in pairs] == [ok for _, _, ok in pairs]
    solution = _function("9.4", "vqa_accuracy")
    overall, _ = solution([a for a, _, _ in pairs], [t for _, t, _ in pairs], ["k"] * len(pairs))
    assert overall == 0.75


def test_every_checked_exercise_is_listed_in_its_notebook_and_the_readme():
    import nbformat

    from chapter09 import notebooks

    readme = (config.PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    chinese = (config.PACKAGE_DIR / "README.zh-CN.md").read_text(encoding="utf-8")
    for script in notebooks.section_scripts():
        section = notebooks.section_number(script)
        notebook = nbformat.read(notebooks.notebook_path(script), as_version=4)
        exercises = next(c.source for c in notebook.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
        for check in core.checks_for(section):
            assert f"`{check.function}`" in exercises, (section, check.function)
            assert f"`{check.function}`" in readme and f"`{check.function}`" in chinese, check.function
            assert f"| {check.exercise.rstrip('ab')}" in readme, check.exercise

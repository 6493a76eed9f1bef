"""The exercises' checkers can fail: the untouched starter fails every check, the solution passes every
check on several fresh draws, and plausible wrong answers (recall over the wrong axis, a one-way
contrastive loss, GB for GiB, ...) fail the check they target while the rest still pass. No model runs.
"""
from __future__ import annotations

import textwrap

import pytest

from chapter09.exercises import __main__ as cli
from chapter09.exercises import core

pytestmark = pytest.mark.unit

# (section, exercise the wrong answer must fail, the wrong function's source)
WRONG = [
    ("9.1", "9.1.1", """
        def l2_normalize(vectors):  # normalises columns instead of rows
            vectors = np.asarray(vectors, dtype=float)
            return vectors / np.linalg.norm(vectors, axis=0, keepdims=True).clip(1e-12)
        """),
    ("9.1", "9.1.1", """
        def l2_normalize(vectors):  # NaN on the zero row
            vectors = np.asarray(vectors, dtype=float)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        """),
    ("9.1", "9.1.2", """
        def cosine_similarity_matrix(image_embeddings, text_embeddings):  # dot product of raw vectors
            return image_embeddings @ text_embeddings.T
        """),
    ("9.1", "9.1.3", """
        def pad_batch(sequences, pad_id):  # pads on the left
            length = max(len(s) for s in sequences)
            ids = np.array([[pad_id] * (length - len(s)) + list(s) for s in sequences])
            mask = np.array([[0] * (length - len(s)) + [1] * len(s) for s in sequences])
            return ids, mask
        """),
    ("9.1", "9.1.4", """
        def normalize_pixels(image, mean, std):  # forgets to scale 0-255 to 0-1
            image = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
            return (image - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1))
        """),
    ("9.2", "9.2.1", """
        def recall_at_k(scores, relevant, k):  # ranks along the wrong axis (columns)
            ranked = np.argsort(-np.asarray(scores), axis=0)[:k, :].T
            return float(np.mean([relevant[q] in ranked[q % len(ranked)] for q in range(len(relevant))]))
        """),
    ("9.2", "9.2.1", """
        def recall_at_k(scores, relevant, k):  # off by one: only the k-1 best count
            ranked = np.argsort(-np.asarray(scores), axis=1)[:, :k - 1]
            return float(np.mean([relevant[q] in ranked[q] for q in range(len(ranked))]))
        """),
    ("9.2", "9.2.2", """
        def zero_shot_classify(image_embeddings, prompt_embeddings):  # one prompt per class, no ensemble
            names = list(prompt_embeddings)
            first = np.stack([prompt_embeddings[n][0] for n in names])
            first = first / np.linalg.norm(first, axis=1, keepdims=True)
            return [names[i] for i in (image_embeddings @ first.T).argmax(axis=1)]
        """),
    ("9.2", "9.2.2", """
        def zero_shot_classify(image_embeddings, prompt_embeddings):  # averages raw vectors, not directions
            names = list(prompt_embeddings)
            centroids = np.stack([prompt_embeddings[n].mean(axis=0) for n in names])
            return [names[i] for i in (image_embeddings @ centroids.T).argmax(axis=1)]
        """),
    ("9.2", "9.2.3", """
        def contrastive_loss(image_features, text_features, logit_scale):  # image -> text only
            import torch
            import torch.nn.functional as F
            logits = logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ \\
                F.normalize(text_features, dim=-1).T
            return F.cross_entropy(logits, torch.arange(len(logits)))
        """),
    ("9.2", "9.2.3", """
        def contrastive_loss(image_features, text_features, logit_scale):  # logit_scale used as the scale itself
            import torch
            import torch.nn.functional as F
            logits = logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
            t = torch.arange(len(logits))
            return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
        """),
    ("9.3", "9.3.1", """
        def semantic_search(query_embeddings, corpus_embeddings, top_k):  # dot product, not cosine
            scores = query_embeddings @ corpus_embeddings.T
            return [[{"corpus_id": int(i), "score": float(row[i])} for i in np.argsort(-row)[:top_k]]
                    for row in scores]
        """),
    ("9.3", "9.3.2", """
        def encode_in_batches(encode, items, batch_size):  # drops the short last batch
            return np.concatenate([encode(items[i:i + batch_size])
                                   for i in range(0, len(items) - batch_size + 1, batch_size)])
        """),
    ("9.3", "9.3.3", """
        def distillation_loss(student_english, student_translated, teacher_english):  # student vs student
            import torch.nn.functional as F
            return F.mse_loss(student_english, teacher_english) + F.mse_loss(student_translated, student_english)
        """),
    ("9.4", "9.4.1", """
        def chat_prompt(history, question, max_turns=3):  # keeps the first turns, and all of them for 0
            turns = [f"Question: {q} Answer: {a}." for q, a in history[:max_turns or None]]
            return " ".join(turns + [f"Question: {question} Answer:"])
        """),
    ("9.4", "9.4.2a", """
        def weights_gib(n_parameters, dtype):  # GB, not GiB
            return n_parameters * BYTES_PER_PARAMETER[dtype] / 1e9
        """),
    ("9.4", "9.4.2b", """
        def fits_in_memory(n_parameters, dtype, free_bytes, headroom=1.25):  # forgets the headroom
            return n_parameters * BYTES_PER_PARAMETER[dtype] <= free_bytes
        """),
    ("9.4", "9.4.3", """
        def vqa_accuracy(answers, truths, kinds):  # compares the raw strings
            right = [a == t for a, t in zip(answers, truths)]
            by_kind = {}
            for ok, kind in zip(right, kinds):
                by_kind.setdefault(kind, []).append(ok)
            return sum(right) / len(right), {k: sum(v) / len(v) for k, v in by_kind.items()}
        """),
    ("9.5", "9.5.1", """
        def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):  # image slots are targets
            b, n = visual_tokens.shape[:2]
            return {"inputs_embeds": torch.cat([visual_tokens, word_embeddings], 1),
                    "attention_mask": torch.cat([attention_mask.new_ones(b, n), attention_mask], 1),
                    "labels": torch.cat([labels.new_zeros(b, n), labels], 1)}
        """),
    ("9.5", "9.5.1", """
        def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels):  # words before the image
            b, n = visual_tokens.shape[:2]
            return {"inputs_embeds": torch.cat([word_embeddings, visual_tokens], 1),
                    "attention_mask": torch.cat([attention_mask, attention_mask.new_ones(b, n)], 1),
                    "labels": torch.cat([labels, labels.new_full((b, n), -100)], 1)}
        """),
    ("9.5", "9.5.2", """
        def caption_labels(input_ids, attention_mask):  # masks by the pad id, which is also a real id
            return input_ids.masked_fill(input_ids == 0, -100)
        """),
    ("9.5", "9.5.3", """
        def quantize_int8(weight):  # one scale for the whole tensor
            scale = weight.abs().max() / 127
            return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale.repeat(len(weight))
        """),
    ("9.5", "9.5.3", """
        def quantize_int8(weight):  # truncates instead of rounding
            scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
            return (weight / scale[:, None]).trunc().to(torch.int8), scale
        """),
    ("9.6", "9.6.1", """
        def latency_per_item(run, items, warmup=1, repeats=3, clock=time.perf_counter):  # the mean, warm-up timed
            started = clock()
            for _ in range(warmup + repeats):
                run(items)
            return (clock() - started) / (warmup + repeats) / len(items)
        """),
    ("9.6", "9.6.2", """
        def choose_model(rows, min_quality, max_memory_mb):  # the fastest, whatever its quality
            measured = [r for r in rows if "ms_per_item" in r and r["memory_mb"] <= max_memory_mb]
            return min(measured, key=lambda r: r["ms_per_item"])["model"] if measured else None
        """),
]
SEEDS = (1, 2, 3)


def _module(section: str, extra_source: str = ""):
    """The solution module, with a wrong function defined over the right one when ``extra_source`` is given."""
    module = core.load_module(core.solution_path(section))
    if extra_source:
        exec(textwrap.dedent(extra_source), module.__dict__)
    return module


@pytest.mark.parametrize("section", core.SECTIONS)
def test_every_section_has_at_least_two_checked_exercises_and_the_solution_passes_them(section):
    assert len(core.checks_for(section)) >= 2
    for seed in SEEDS:
        outcomes = core.run_checks(section, _module(section), seed)
        assert all(o.passed for o in outcomes), [(o.exercise, o.message) for o in outcomes if not o.passed]


@pytest.mark.parametrize("section", core.SECTIONS)
def test_the_untouched_starter_fails_every_check(section):
    outcomes = core.run_checks(section, core.load_module(core.starter_path(section)), seed=7)
    assert outcomes and not any(o.passed for o in outcomes)
    assert {o.message for o in outcomes} == {"not written yet"} and all(o.hint for o in outcomes)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a wrong answer may divide by zero
@pytest.mark.parametrize("section, exercise, source", WRONG, ids=[f"{e}-{i}" for i, (_, e, _) in enumerate(WRONG)])
def test_a_plausible_wrong_answer_fails_its_check_and_only_that_one(section, exercise, source):
    for seed in SEEDS:
        outcomes = {o.exercise: o for o in core.run_checks(section, _module(section, source), seed)}
        assert not outcomes[exercise].passed, f"seed {seed}: the wrong answer passed"
        assert all(o.passed for name, o in outcomes.items() if name != exercise)


def test_every_exercise_has_a_wrong_answer_that_it_catches():
    targeted = {exercise for _, exercise, _ in WRONG}
    assert targeted == {c.exercise for s in core.SECTIONS for c in core.checks_for(s)}


def test_start_then_check_from_the_command_line(tmp_path, capsys):
    folder = str(tmp_path / "mine")
    assert cli.main(["start", "9.2", "--dir", folder]) == 0
    assert cli.main(["start", "9.2", "--dir", folder]) == 1  # never overwrites a learner's work
    capsys.readouterr()
    assert cli.main(["check", "9.2", "--dir", folder, "--seed", "5"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 3 and "hint:" in out and "0 of 3 passed" in out and "seed 5" in out
    # the hints never give the solution away: no line of a solution body appears in the output
    body = [line.strip() for line in core.solution_path("9.2").read_text().splitlines()
            if line.startswith("    ") and len(line.strip()) > 20]
    assert body and not any(line in out for line in body)

    (tmp_path / "mine" / "ex9_2.py").write_text(core.solution_path("9.2").read_text())
    assert cli.main(["check", "9.2", "--dir", folder]) == 0
    assert "3 of 3 passed" in capsys.readouterr().out

    (tmp_path / "mine" / "ex9_2.py").write_text("def recall_at_k(:\n")
    assert cli.main(["check", "9.2", "--dir", folder]) == 2
    assert "cannot be imported: SyntaxError" in capsys.readouterr().out


def test_a_crash_in_the_learners_code_is_reported_with_its_line(tmp_path):
    path = tmp_path / "ex9_6.py"
    path.write_text("def latency_per_item(run, items, warmup=1, repeats=3, clock=None):\n    return 1 / 0\n"
                    "def choose_model(rows, min_quality, max_memory_mb):\n    raise NotImplementedError\n")
    first, second = core.run_checks("9.6", core.load_module(path), seed=3)
    assert not first.passed and "ZeroDivisionError" in first.message and "line 2" in first.message
    assert second.message == "not written yet"


def test_every_checked_exercise_is_listed_in_its_notebook_and_the_readme():
    import nbformat

    from chapter09 import config, notebooks

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

"""Capstone eval reads the formats people have, and its caption metrics score what they should."""
import base64
import json

import pytest

from chapter09.capstone.evaluate import bleu4, cider_d, evaluate_retrieval, load_dataset
from chapter09.toyworld import read_jsonl, write_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("small"), n=120, seed=31, split="heldout")


def as_chinese_clip_tsv(small, folder):
    rows = read_jsonl(small / "captions.jsonl")
    names = sorted({r["image"] for r in rows})
    ids = {name: str(1000 + i) for i, name in enumerate(names)}
    with open(folder / "valid_imgs.tsv", "w") as tsv:
        for name in names:
            tsv.write(f"{ids[name]}\t{base64.urlsafe_b64encode((small / name).read_bytes()).decode()}\n")
    with open(folder / "valid_texts.jsonl", "w", encoding="utf-8") as texts:
        for t, row in enumerate(r for r in rows if r["lang"] == "zh"):
            texts.write(json.dumps({"text_id": t, "text": row["caption"], "image_ids": [int(ids[row["image"]])]},
                                   ensure_ascii=False) + "\n")
    return folder


def as_coco(small, folder):
    rows = [r for r in read_jsonl(small / "captions.jsonl") if r["lang"] == "en"]
    names = sorted({r["image"] for r in rows})
    data = {"images": [{"id": i, "file_name": str(small / n)} for i, n in enumerate(names)],
            "annotations": [{"id": a, "image_id": names.index(r["image"]), "caption": r["caption"]}
                            for a, r in enumerate(rows)]}
    (folder / "captions_val.json").write_text(json.dumps(data))
    return folder / "captions_val.json"


def test_every_format_gives_the_same_recall(small, tmp_path):
    reference = evaluate_retrieval(load_dataset(small), "clip", models="toy")["languages"]
    tsv = load_dataset(as_chinese_clip_tsv(small, tmp_path))
    assert len(tsv.images) == 120 and len(tsv.texts) == 240
    zh = evaluate_retrieval(tsv, "clip", models="toy")["languages"]["zh"]
    assert zh["text_to_image"] == pytest.approx(reference["zh"]["text_to_image"], abs=0.01)
    coco = load_dataset(as_coco(small, tmp_path))
    en = evaluate_retrieval(coco, "clip", models="toy")["languages"]["en"]
    assert en["text_to_image"] == pytest.approx(reference["en"]["text_to_image"], abs=0.01)
    # captions.json as {image: [captions]} in a folder of its own
    folder = tmp_path / "json_folder"
    folder.mkdir()
    mapping = {}
    for r in read_jsonl(small / "captions.jsonl"):
        mapping.setdefault(str(small / r["image"]), []).append(r["caption"])
    (folder / "captions.json").write_text(json.dumps(mapping, ensure_ascii=False))
    as_json = evaluate_retrieval(load_dataset(folder), "clip", models="toy")["languages"]
    assert as_json["en"]["text_to_image"] == pytest.approx(reference["en"]["text_to_image"], abs=0.01)


def test_caption_metrics_rank_right_above_wrong():
    refs = [["a small red circle at the top left", "a photo of a small red circle at the top left"],
            ["a large blue star in the center", "there is a large blue star in the center"]]
    right = ["a small red circle at the top left", "a large blue star in the center"]
    wrong = ["a large green square at the bottom", "a small yellow circle on the right"]
    assert bleu4(right, refs, "en") > 90 > 10 > bleu4(wrong, refs, "en")
    assert cider_d(right, refs, "en") > 3 * cider_d(wrong, refs, "en")
    zh_refs = [["左上方有一个小的红色圆形。"], ["中间有一个大的蓝色星形。"]]
    assert bleu4(["左上方有一个小的红色圆形。", "中间有一个大的蓝色星形。"], zh_refs, "zh") > 90
    assert bleu4(["右下方有一个大的绿色正方形。", "左边有一个小的黄色菱形。"], zh_refs, "zh") < 40

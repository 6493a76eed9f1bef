"""Capstone eval reads the formats people have, and its caption metrics score what they should."""
import base64
import json

import pytest

from chapter09.capstone.evaluate import (
    bleu4,
    cider_d,
    cider_d_reference,
    evaluate_retrieval,
    load_dataset,
    tokens_for_metrics,
)
from chapter09.models import Settings
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
    reference = evaluate_retrieval(load_dataset(small), "clip", Settings("toy"))["languages"]
    tsv = load_dataset(as_chinese_clip_tsv(small, tmp_path))
    assert len(tsv.images) == 120 and len(tsv.texts) == 240
    zh = evaluate_retrieval(tsv, "clip", Settings("toy"))["languages"]["zh"]
    assert zh["text_to_image"] == pytest.approx(reference["zh"]["text_to_image"], abs=0.01)
    coco = load_dataset(as_coco(small, tmp_path))
    en = evaluate_retrieval(coco, "clip", Settings("toy"))["languages"]["en"]
    assert en["text_to_image"] == pytest.approx(reference["en"]["text_to_image"], abs=0.01)
    # captions.json as {image: [captions]} in a folder of its own
    folder = tmp_path / "json_folder"
    folder.mkdir()
    mapping = {}
    for r in read_jsonl(small / "captions.jsonl"):
        mapping.setdefault(str(small / r["image"]), []).append(r["caption"])
    (folder / "captions.json").write_text(json.dumps(mapping, ensure_ascii=False))
    as_json = evaluate_retrieval(load_dataset(folder), "clip", Settings("toy"))["languages"]
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


def as_published_coco(small, root, missing=("000000009999.jpg",)):
    """COCO's own layout: annotations/captions_val2017.json beside val2017/, COCO-style file names,
    plus a train split the loader must not pick; ``missing`` are listed but not on disk."""
    rows = [r for r in read_jsonl(small / "captions.jsonl") if r["lang"] == "en"]
    names = sorted({r["image"] for r in rows})
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "train2017").mkdir()
    files = {}
    for i, name in enumerate(names):
        files[name] = f"{i + 1:012d}.jpg"
        (root / "val2017" / files[name]).write_bytes((small / name).read_bytes())
    images = [{"id": i + 1, "file_name": files[n], "height": 64, "width": 64} for i, n in enumerate(names)]
    annotations = [{"id": a, "image_id": names.index(r["image"]) + 1, "caption": r["caption"] + " "}
                   for a, r in enumerate(rows)]
    for j, name in enumerate(missing):
        images.append({"id": 90000 + j, "file_name": name})
        annotations += [{"id": 90000 + 10 * j + c, "image_id": 90000 + j, "caption": "a picture that is gone"}
                        for c in range(5)]
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": annotations}))
    (root / "train2017" / "000000000001.jpg").write_bytes((small / names[0]).read_bytes())
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "000000000001.jpg"}], "annotations": [{"id": 1, "image_id": 1,
                                                                                 "caption": "train"}]}))
    return root, len(names), len(rows)


def test_a_coco_folder_as_published_is_found_and_missing_images_are_skipped(small, tmp_path, capsys):
    from chapter09.capstone.__main__ import main

    root, n, captions = as_published_coco(small, tmp_path / "coco")
    data = load_dataset(root)
    assert data.name.endswith("captions_val2017.json")  # the validation split, not train
    assert len(data.images) == n == 120 and data.missing == ["000000009999.jpg"]
    assert all(str(path).startswith(str(root / "val2017")) for path in data.images)
    assert "a picture that is gone" not in data.texts and len(data.texts) == captions == 240
    report = evaluate_retrieval(data, "clip", Settings("toy"))
    assert report["missing"] == 1 and report["images"] == 120
    reference = evaluate_retrieval(load_dataset(small), "clip", Settings("toy"))["languages"]["en"]
    assert report["languages"]["en"]["text_to_image"] == pytest.approx(reference["text_to_image"], abs=0.01)
    # the command line says how many were missing and carries on
    assert main(["eval", "--dataset", str(root), "--models", "toy"]) == 0
    out = capsys.readouterr().out
    assert "MISSING: 1 listed image(s) not found" in out and "000000009999.jpg" in out and "R@1" in out
    # --split picks the other split; the JSON itself works too, its images found by the split name
    assert load_dataset(root, split="train2017").texts == ["train"]
    assert len(load_dataset(root / "annotations" / "captions_val2017.json").images) == 120


def test_a_coco_folder_with_no_images_says_where_it_looked(small, tmp_path):
    root, _, _ = as_published_coco(small, tmp_path / "coco")
    for image in (root / "val2017").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match="none of the 121 images.*--images"):
        load_dataset(root)


def test_an_unrecognised_folder_lists_every_format_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError) as error:
        load_dataset(tmp_path)
    message = str(error.value)
    for expected in ("captions.jsonl", "captions.json", "COCO", "annotations/captions_", "val2017",
                     "_texts.jsonl", "_imgs.tsv"):
        assert expected in message, (expected, message)


def test_tokens_follow_the_coco_toolkit():
    assert tokens_for_metrics("A man's hat, don't you think?", "en") == [
        "a", "man", "'s", "hat", "do", "n't", "you", "think"]
    assert tokens_for_metrics("A T-shirt on a 1.5 m table.", "en") == ["a", "t-shirt", "on", "a", "1.5", "m", "table"]
    assert tokens_for_metrics("“左上方”有一个小的红色圆形。", "zh") == list("左上方有一个小的红色圆形")


def _toy_caption_sets(small):
    by_image: dict = {}
    for r in read_jsonl(small / "captions.jsonl"):
        by_image.setdefault(r["image"], {}).setdefault(r["lang"], []).append(r["caption"])
    return [by_image[name] for name in sorted(by_image)]


def test_cider_d_agrees_with_pycocoevalcap(small):
    """The project's CIDEr-D equals pycocoevalcap's (CIDEr-D: sigma 6, clipping) on the same tokens."""
    import random

    cases = []
    refs = [["a small red circle at the top left", "a photo of a small red circle at the top left"],
            ["a large blue star in the center", "there is a large blue star in the center"],
            ["A man's dog, running on the beach.", "a dog runs along the sand"]]
    cases.append((["a small red circle at the top left", "a large blue star in the center", "a dog on a beach"],
                  refs, "en"))
    cases.append((["a large green square at the bottom", "a small yellow circle on the right", ""], refs, "en"))
    zh_refs = [["左上方有一个小的红色圆形。", "一个红色的小圆在左上角"], ["中间有一个大的蓝色星形。"], ["海滩上有一只狗在跑。"]]
    cases.append((["左上方有一个小的红色圆形。", "中间有一个蓝色星形", "一只狗"], zh_refs, "zh"))
    cases.append((["右下方有一个大的绿色正方形。", "左边有一个小的黄色菱形。", "海滩"], zh_refs, "zh"))
    # the toy world's captions, both languages: hypotheses are another image's caption or a reference
    sets = _toy_caption_sets(small)[:40]
    rng = random.Random(3)
    for lang in ("en", "zh"):
        references = [s[lang] for s in sets]
        hypotheses = [rng.choice(sets[rng.randrange(len(sets))][lang]) if rng.random() < 0.5 else s[lang][0]
                      for s in sets]
        cases.append((hypotheses, references, lang))
    for hypotheses, references, lang in cases:
        ours, reference = cider_d(hypotheses, references, lang), cider_d_reference(hypotheses, references, lang)
        assert ours == pytest.approx(reference, abs=1e-9), (lang, hypotheses[:2])
    assert cider_d(*cases[0]) > 3 * cider_d(*cases[1]) and cider_d(*cases[2]) > 3 * cider_d(*cases[3])


def test_heic_and_avif_photos_are_indexed_searched_and_captioned_like_jpeg(small, tmp_path):
    """One JPEG, one HEIC (stored sideways with an EXIF orientation tag) and one AVIF in a library."""
    from PIL import Image

    from chapter09.capstone.caption.describe import caption_images
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.images import load_image
    from chapter09.toyworld import load_scenes

    settings = Settings("toy")
    scenes = sorted(load_scenes(small).items())
    chosen = {".jpg": scenes[3], ".heic": scenes[40], ".avif": scenes[77]}
    library = tmp_path / "photos"
    library.mkdir()
    for suffix, (name, _scene) in chosen.items():
        image = Image.open(small / name).convert("RGB")
        if suffix == ".heic":  # as a phone stores a portrait shot: pixels sideways, EXIF says rotate back
            exif = Image.Exif()
            exif[0x0112] = 8  # shown rotated 90 degrees counter-clockwise
            image.rotate(-90, expand=True).save(library / f"IMG_0001{suffix}", exif=exif.tobytes(), quality=95)
        else:
            image.save(library / f"IMG_0001{suffix}", quality=95)
    summary = build_index(library, tmp_path / "index", {"clip": clip_encoder("clip", settings)}, workers=0,
                          progress=False)
    assert summary.total == 3 and not summary.failed and not summary.skipped, summary.text()
    searcher = LibrarySearch(tmp_path / "index", settings)
    for suffix, (name, scene) in chosen.items():
        path = library / f"IMG_0001{suffix}"
        original = Image.open(small / name).convert("RGB")
        loaded = load_image(path)
        assert loaded.size == original.size  # upright, EXIF orientation honoured

        def difference(a, b):
            return sum(abs(x - y) for x, y in zip(a.resize((32, 32)).tobytes(), b.resize((32, 32)).tobytes()))

        upright = difference(loaded, original)  # the same picture (lossy: not zero) ...
        assert upright < difference(loaded, original.rotate(90)) / 3, suffix  # ... and not a turned one
        assert upright < difference(loaded, original.rotate(-90)) / 3, suffix
        assert searcher.by_text(scene.captions("en")[0], k=1)["hits"][0]["path"] == path.name
        assert searcher.by_image(path, k=1)["hits"][0]["path"] == path.name
        caption_of_file, = caption_images([path], ("en",), settings)
        assert caption_of_file["en"] == caption_images([original], ("en",), settings)[0]["en"]


def as_tool_export(root, n=6, corrupt=("broken.jpg",), missing=("gone.jpg",)):
    """An annotation tool's COCO export: result.json beside images/, a handful of tiny JPEGs; ``corrupt``
    are on disk but truncated, ``missing`` are listed but absent."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    names = [f"photo_{i}.jpg" for i in range(n)]
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    for i, name in enumerate(names):
        Image.new("RGB", (48, 40), colours[i % len(colours)]).save(root / "images" / name, quality=90)
    for name in corrupt:
        whole = (root / "images" / names[0]).read_bytes()
        (root / "images" / name).write_bytes(whole[: len(whole) // 3])  # a JPEG cut off mid-scan
    listed = names + list(corrupt) + list(missing)
    data = {"images": [{"id": i, "file_name": name} for i, name in enumerate(listed)],
            "annotations": [{"id": i, "image_id": i, "caption": f"a {colours[i % len(colours)]} square"}
                            for i in range(len(listed))]}
    (root / "result.json").write_text(json.dumps(data))
    return root / "result.json", names


def test_a_tool_export_with_images_beside_its_json_is_found_and_a_corrupt_image_is_skipped(tmp_path, capsys):
    from chapter09.capstone.__main__ import main

    json_path, names = as_tool_export(tmp_path / "export")
    data = load_dataset(json_path)
    assert [p.name for p in data.images] == names  # found in images/, not reported missing
    assert all(p.parent == tmp_path / "export" / "images" for p in data.images)
    assert data.missing == ["gone.jpg"]
    assert list(data.unreadable) == ["broken.jpg"] and "truncated" in data.unreadable["broken.jpg"]
    assert len(data.texts) == len(names)  # the captions of the skipped images went with them
    report = evaluate_retrieval(data, "clip", Settings("toy"))
    assert report["images"] == len(names) and report["unreadable"] == 1 and report["missing"] == 1
    assert report["unreadable_examples"][0].startswith("broken.jpg (")
    # the command line names the corrupt image like the missing one and carries on to the recall
    assert main(["eval", "--dataset", str(json_path), "--models", "toy"]) == 0
    out = capsys.readouterr().out
    assert "MISSING: 1 listed image(s) not found" in out and "gone.jpg" in out
    assert "UNREADABLE: 1 listed image(s) could not be decoded" in out and "broken.jpg" in out and "R@1" in out


def test_a_data_set_whose_every_image_is_corrupt_says_so(tmp_path):
    json_path, names = as_tool_export(tmp_path / "export", n=2, missing=())
    for name in names:
        (tmp_path / "export" / "images" / name).write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="none of the 3 images it lists can be read.*not an image"):
        load_dataset(json_path)

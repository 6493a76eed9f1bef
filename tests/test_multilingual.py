"""The distilled multilingual text encoder lands Chinese queries next to the right images."""
import pytest
from sentence_transformers import SentenceTransformer, util

from chapter09.clip import ClipEncoder
from chapter09.models import Settings, resolve
from chapter09.retrieval import recall_at_k
from chapter09.toyworld import generate_scenes


@pytest.fixture(scope="module")
def gallery():
    scenes = generate_scenes(300, seed=515, split="heldout")
    images = ClipEncoder("clip", Settings("toy", dtype="float32")).encode_images([s.render() for s in scenes])
    return scenes, images


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_multilingual_queries_find_images_encoded_by_clip(gallery, lang):
    scenes, images = gallery
    student = SentenceTransformer(resolve("multilingual_text", "toy").location, device="cpu")
    queries = student.encode([s.captions(lang)[0] for s in scenes], convert_to_numpy=True)
    recall = recall_at_k(util.cos_sim(queries, images).numpy(), list(range(len(scenes))), ks=(1, 5))
    print(f"\nmultilingual student [{lang}] over {len(scenes)} held-out images: {recall}")
    assert recall["R@5"] >= 0.80


def test_sentence_transformers_loads_the_toy_clip_directly(gallery):
    scenes, images = gallery
    model = SentenceTransformer(resolve("sbert_clip", "toy").location, device="cpu")
    st_images = model.encode([s.render() for s in scenes[:20]], convert_to_numpy=True, normalize_embeddings=True)
    assert abs(st_images - images[:20]).max() < 1e-3  # the same vectors as the transformers path

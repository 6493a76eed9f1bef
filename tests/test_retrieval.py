"""The retrieval maths every lesson and the capstone share, against values worked out by hand."""
import numpy as np
import pytest

from chapter09.retrieval import (
    accuracy_margin,
    cosine_similarity,
    l2_normalize,
    recall_at_k,
    recall_both_ways,
    top_k,
    top_k_scores,
)


def test_l2_normalize_makes_unit_rows_and_leaves_zero_rows_zero():
    rows = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_cosine_similarity_ignores_length():
    assert np.allclose(cosine_similarity(np.array([[2.0, 0.0]]), np.array([[5.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])),
                       [[1.0, 0.0, -np.sqrt(0.5)]])


def test_top_k_is_best_first_and_caps_k():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    values, ids = top_k_scores(scores, 10)  # k larger than the row: every column, best first
    assert ids.shape == (2, 4) and np.allclose(values[0], [0.9, 0.7, 0.5, 0.1])


def test_recall_at_k_counts_a_query_once_any_relevant_item_is_in_its_top_k():
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9], [0.5, 0.4, 0.3]])
    # query 0 wants 1 (ranked 2nd), query 1 wants 2 (1st), query 2 wants {1, 2} (2nd and 3rd)
    assert recall_at_k(scores, [1, 2, {1, 2}], ks=(1, 2, 3)) == pytest.approx({"R@1": 1 / 3, "R@2": 1.0, "R@3": 1.0})


def test_recall_both_ways_skips_images_no_text_describes():
    images = np.eye(3)
    texts = np.array([[1.0, 0.0, 0.0], [0.0, 0.2, 1.0], [0.0, 1.0, 0.1]])
    # text 0 -> image 0 (right), text 1 -> image 2 (it describes image 1: wrong at R@1), text 2 -> image 1 (right)
    result = recall_both_ways(texts, images, [0, 1, 1], ks=(1, 2))
    assert result["text_to_image"] == pytest.approx({"R@1": 2 / 3, "R@2": 1.0})
    # image 2 is described by no text and is left out; image 0 finds text 0, image 1 finds text 2 (its own)
    assert result["image_to_text"] == pytest.approx({"R@1": 1.0, "R@2": 1.0}) and result["queries"] == 3


def test_accuracy_margin_counts_the_items_that_differ_and_its_noise_shrinks_with_more_items():
    better, baseline = [True, True, True, False], [True, False, True, False]
    result = accuracy_margin(better, baseline, draws=500)
    assert result["margin"] == pytest.approx(0.25) and (result["only_hits"], result["only_baseline"]) == (1, 0)
    assert result["accuracy"] == 0.75 and result["baseline_accuracy"] == 0.5 and result["items"] == 4
    assert result["standard_error"] == pytest.approx(np.sqrt(0.25 * 0.75 / 4), rel=0.2)  # a binomial's
    many = accuracy_margin(better * 100, baseline * 100, draws=500)
    assert many["margin"] == pytest.approx(0.25) and many["standard_error"] < result["standard_error"] / 5
    assert accuracy_margin(baseline, baseline)["standard_error"] == 0  # the same answers: no noise in the margin
    with pytest.raises(ValueError):
        accuracy_margin([True], [True, False])


def test_hard_family_accuracy_compares_a_caption_with_its_own_family_only():
    from chapter09.toyworld.eval import hard_family_accuracy

    scores = np.zeros((7, 7))
    scores[np.arange(6), np.arange(6)] = 1.0  # every caption prefers its own scene...
    scores[1, 0] = 2.0  # ...but the binding swap of family 0 prefers the base
    scores[3, 0] = 5.0  # another family's scene scores higher still: not a member, so it cannot count
    result = hard_family_accuracy(scores)  # the 7th scene opens a family cut short: left out
    assert result == pytest.approx({"all": 5 / 6, "base": 1.0, "binding": 0.5, "position": 1.0, "chance": 1 / 3,
                                    "families": 2})


def test_the_end_of_text_position_is_found_as_transformers_finds_it():
    from chapter09.clip import end_of_text_positions

    # eos 1 doubling as padding: the first 1 of each row
    assert end_of_text_positions([[0, 7, 9, 1, 1], [0, 8, 1, 1, 1]], eos_token_id=1).tolist() == [3, 2]
    # a config still saying 2 (OpenAI's checkpoints before transformers PR #24773): the highest id
    assert end_of_text_positions([[49406, 320, 49407, 49407]], eos_token_id=2).tolist() == [2]

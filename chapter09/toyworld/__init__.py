"""The toy world: synthetic bilingual scenes, tiny twins of the chapter's models, and their training.

Real multimodal weights live on the Hugging Face hub. When it cannot be reached, every
lesson runs on tiny models of the same transformers classes, trained here from scratch
on scenes of coloured shapes and stored in ``twins/``.

* ``scenes``: the scenes, their captions (en/zh) and questions; data sets on disk.
* ``eval``: measuring a CLIP on a toy data set (recall, zero-shot accuracy).
* ``corpus``, ``tokenizers``: the texts and tokenizers the trainers share.
* ``train_*``: one trainer per twin; ``trainers``: which trainer builds which role.

    python -m chapter09.toyworld make OUT_DIR --n 600 --seed 1 [--split heldout]
    python -m chapter09.toyworld eval DATA_DIR [--json]
    python -m chapter09.toyworld train clip            # retrain a toy twin
"""
from .scenes import (
                     COLOURS,
                     HELDOUT_COMBOS,
                     POSITIONS,
                     SHAPES,
                     SIZES,
                     Scene,
                     ToyObject,
                     generate_scenes,
                     load_scenes,
                     read_jsonl,
                     write_dataset,
)

__all__ = ["COLOURS", "HELDOUT_COMBOS", "POSITIONS", "SHAPES", "SIZES", "Scene", "ToyObject", "generate_scenes",
           "load_scenes", "read_jsonl", "write_dataset"]

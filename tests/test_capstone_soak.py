"""The soak of the JSON API (``bench/soak.py``, issue 34): a few seconds of it against ``serve`` on a 12-image toy
index answers every request of every kind and samples the server's memory; its growth and option checks on
figures made here."""
import os

import pytest

from chapter09.errors import ChapterError
from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import read_jsonl, write_dataset

    library = write_dataset(tmp_path_factory.mktemp("soak_lib"), n=12, seed=5151, split="heldout")
    index = tmp_path_factory.mktemp("soak_idx")
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    rows = read_jsonl(library / "captions.jsonl")
    return index, [r["caption"] for r in rows if r["lang"] == "en"], [r["caption"] for r in rows if r["lang"] == "zh"]


def test_a_short_soak_answers_every_request_and_samples_the_memory(toy_index):
    from chapter09.capstone.bench.soak import MIX, SoakOptions, format_soak, run_soak
    from chapter09.capstone.web.serve import serve
    from tests.test_capstone_serve import free_port

    index, english, chinese = toy_index
    port = free_port()
    app = serve(index, port=port, settings=Settings("toy"), block=False)
    try:
        options = SoakOptions(seconds=3, clients=4)
        report = run_soak(f"http://127.0.0.1:{port}", os.getpid(), english, chinese, options)
    finally:
        app.close()
    assert report["requests"] > 20 and report["answered"] == report["requests"], report["unanswered_why"]
    assert report["unanswered"] == 0 and report["errors"] == 0 and report["slowed_429"] == 0  # loopback: no limiter
    assert set(report["kinds"]) == set(MIX)  # every kind was sent, images and uploads from what answers named
    assert all(set(kind["statuses"]) <= {"200", "304"} for kind in report["kinds"].values())
    assert sum(kind["requests"] for kind in report["kinds"].values()) == report["requests"]
    # RSS every 0.15 s from 0 s to the end, all read; growth from the first sample at or after 0.6 s
    assert len(report["rss"]) >= 15 and all(sample["mb"] > 50 for sample in report["rss"])
    memory = report["memory"]
    assert memory["from_s"] >= 0.6 and memory["to_s"] >= 2.9
    assert memory["growth_mb"] == pytest.approx(memory["to_mb"] - memory["from_mb"], abs=0.11)
    assert [w["from_s"] for w in report["windows"]] == [0.0, 0.6, 1.2, 1.8, 2.4]
    assert sum(w["requests"] for w in report["windows"]) == report["answered"]
    assert report["cpu"]["same_process"] and report["cpu"]["server_cores"] > 0
    text = format_soak(report)
    assert f"{report['answered']:,} answered of {report['requests']:,} (0 unanswered)" in text


def test_memory_growth_is_measured_after_the_warm_up():
    from chapter09.capstone.bench.soak import memory_growth

    # 100 MB while warming up, then 200 MB growing 1 MB every 10 s
    samples = [(0.0, 100.0, 0.5), (30.0, 150.0, 0.5)] + [(60.0 + 10 * i, 200.0 + i, 0.5) for i in range(7)]
    growth = memory_growth(samples, warmup_s=60)
    assert growth["from_mb"] == 200.0 and growth["to_mb"] == 206.0 and growth["growth_mb"] == 6.0
    assert growth["growth_pct"] == 3.0 and growth["trend_mb_per_min"] == 6.0 and growth["samples_after_warmup"] == 7
    assert memory_growth(samples[:3], warmup_s=60) == {"samples_after_warmup": 1}  # too few to say


@pytest.mark.parametrize("given, message", [({"seconds": 0}, "--soak"), ({"clients": 0}, "--clients"),
                                            ({"k": 51}, "--k"), ({"seconds": 5, "warmup_s": 5}, "warm-up")])
def test_soak_options_name_the_bad_value(given, message):
    from chapter09.capstone.bench.soak import SoakOptions

    with pytest.raises(ChapterError, match=message):
        SoakOptions(**given)
    assert SoakOptions(seconds=600).sample_s == 10 and SoakOptions(seconds=600).warmup_s == 60

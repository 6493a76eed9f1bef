"""The web UI in Chinese (``serve --lang zh``, or ``auto`` with a Chinese browser): every label, button, tab,
placeholder and message of the page from one table (``web/i18n.py``), the model table still saying which models
run. The page is built here on a small toy index and its component tree read; handlers are called as Gradio calls
them, with a request carrying the browser's ``Accept-Language``."""
import contextvars
import re

import gradio as gr
import pytest

from chapter09.capstone.search.filters import FORMATS
from chapter09.capstone.search.queries import STRATEGIES
from chapter09.capstone.web.i18n import WORDS, PageWords, browser_lang, checked_lang
from chapter09.errors import UsageError
from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning")]
CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z_\-]{2,}")
ROLES = ("clip", "chinese_clip", "multilingual_text", "translator_zh_en", "translator_en_zh", "captioner")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path_factory.mktemp("zh_library"), n=12, seed=71, split="heldout")
    folder = tmp_path_factory.mktemp("zh_index")
    build_index(library, folder, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False,
                build_ann=False)
    return folder


@pytest.fixture(scope="module")
def chinese_app(index):
    from chapter09.capstone.web.page import build_app

    app, library = build_app(index, Settings("toy"), lang="zh")
    return app, library


class FakeRequest:
    """What a handler reads of Gradio's request: its headers."""

    def __init__(self, accept_language=None):
        self.headers = {"accept-language": accept_language} if accept_language else {}
        self.username, self.client = None, type("Client", (), {"host": "127.0.0.1"})()


def shown_texts(app) -> dict[str, list[str]]:
    """The words each component shows: labels, placeholders, button and tab texts, choice labels, HTML (tags off)."""
    texts: dict[str, list[str]] = {}
    for block in app.blocks.values():
        kind = type(block).__name__
        found = [getattr(block, name, None) for name in ("label", "placeholder", "info")]
        if kind in ("Button", "Markdown"):
            found.append(block.value)
        if kind == "HTML":
            found.append(re.sub(r"<[^>]+>", " ", block.value or ""))
        found += [choice[0] for choice in getattr(block, "choices", None) or ()]
        texts.setdefault(kind, []).extend(str(text) for text in found if text not in (None, ""))
    return texts


def english_left(text: str, names: set[str]) -> list[str]:
    """Words of English in ``text`` once names are set aside: paths, flags, values the API takes."""
    text = re.sub(r"(?:^|\s)(?:--|/)\S+", " ", text)
    return [w for w in ENGLISH_WORD.findall(text) if w not in names]


def test_the_lang_flag_and_the_browser_language():
    assert [checked_lang(v) for v in ("en", "zh", "auto")] == ["en", "zh", "auto"]
    with pytest.raises(UsageError, match="serve --lang"):
        checked_lang("fr")
    assert browser_lang("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert browser_lang("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert browser_lang("fr-FR,zh-TW;q=0.5,en;q=0.3") == "zh"  # the first of the two the browser prefers
    assert browser_lang("en;q=0,zh;q=0.1") == "zh" and browser_lang("") == "en" and browser_lang(None) == "en"
    assert browser_lang("de-DE") == "en" and browser_lang("zh;q=abc,en") == "en"  # a broken q: not preferred


def test_every_word_has_its_chinese():
    for key, (english, chinese) in WORDS.items():
        assert english and CJK.search(chinese), key
        assert re.findall(r"\{\w+\}", english) == re.findall(r"\{\w+\}", chinese), key


def test_the_chinese_page_has_no_english_label_and_still_shows_its_models(chinese_app):
    app, library = chinese_app
    names = {*STRATEGIES, *FORMATS, *library.top_folders(), "ISO", "IVF-SQ8", "caption", "index", "models", "real",
             "canon", "iphone",  # camera makes, typed as the photos' EXIF spells them
             "CLIP", "EXIF", "GPS"}  # a model family and the photo tags a place comes from: names
    header = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "header").value
    table = re.search(r"<tbody>(.*)</tbody>", header).group(1)
    # the model table: every role, real or toy, its class and where it lives (names, left as they are)
    assert all(role in table for role in ROLES) and "玩具孪生" in table and "CLIPModel" in table
    assert "玩具世界" in header and "--models real" in header
    texts = shown_texts(app)
    around = re.sub(r"<tbody>.*</tbody>|<code>.*?</code>", " ", header)  # the header around the model table
    texts["HTML"] = [re.sub(r"<[^>]+>", " ", around)]
    left = {kind: [t for t in shown if english_left(t, names)] for kind, shown in texts.items()}
    assert not any(left.values()), left
    assert sum(len(shown) for shown in texts.values()) > 50  # the walk read the page at all
    tabs = [block.label for block in app.blocks.values() if type(block).__name__ == "Tab"]
    assert tabs == ["检索", "描述", "匹配", "重复"]
    assert app.title == "第 9 章综合项目：图片库"  # the browser tab's title


def test_the_page_built_auto_carries_keys_the_browser_resolves(index):
    from chapter09.capstone.web.page import build_app

    words = PageWords("auto")
    app, _ = build_app(index, Settings("toy"), lang=words)
    translations = words.translations().translations_dict
    assert set(translations["en"]) == set(translations["zh-CN"]) == set(WORDS)
    labels = [block.label for block in app.blocks.values() if type(block).__name__ == "Tab"]
    assert [label.key for label in labels] == ["tab_search", "tab_caption", "tab_match", "tab_duplicates"]  # gr.I18n keys
    # where no browser resolves the words (the login page, the window title): both languages
    assert words.plain("login") == f"{WORDS['login'][0]} / {WORDS['login'][1]}"
    assert PageWords("zh").plain("login") == WORDS["login"][1]


def call(handler, *args, **kwargs):
    """A handler in a context of its own, as Gradio runs each event (the language it sets ends with it)."""
    return contextvars.copy_context().run(handler, *args, **kwargs)


def test_messages_follow_the_page_or_the_browser(chinese_app):
    from chapter09.capstone.web.handlers import Handlers

    _, library = chinese_app
    chinese, auto = Handlers(library, lang="zh"), Handlers(library, lang="auto")
    for handlers, accept, expected in ((chinese, None, "请输入查询"), (auto, "zh-CN,zh;q=0.9", "请输入查询"),
                                       (auto, "en-US,en;q=0.9", "type a query"), (auto, None, "type a query")):
        with pytest.raises(gr.Error) as refused:
            call(handlers.text_search, "  ", "auto", 8, request=FakeRequest(accept))
        assert expected in refused.value.message
    with pytest.raises(gr.Error, match="结果数必须是 1 到 50 之间的整数"):
        call(chinese.text_search, "红色圆形", "auto", "lots", request=FakeRequest())
    with pytest.raises(gr.Error, match="请先选一个结果"):
        call(chinese.find_similar, "../../etc/passwd", 8, request=FakeRequest())
    items, note, hits = call(chinese.text_search, "红色圆形", "auto", 3, request=FakeRequest())
    said, encoded = note.split("实际编码的查询：")  # the query as translated for CLIP: English, by design
    assert len(hits) == 3 and "张图片中做精确搜索" in said and not english_left(said, set(STRATEGIES))
    assert encoded.strip() == "a red circle"
    detail = call(chinese.select_hit, hits, gr.SelectData(None, {"index": 0, "value": None}), request=FakeRequest())
    assert "分数" in detail[0] and "打开原图" in detail[0]
    items, note, hits = call(chinese.text_search, "红色圆形", "auto", 3, "images", request=FakeRequest())
    assert "筛选：文件夹 images -> 12 张图片中有 12 张符合（精确）" in note, note
    items, note, hits = call(auto.text_search, "a red circle", "auto", 3, request=FakeRequest("en"))
    assert "search over" in note and not CJK.search(note)


def test_a_chinese_browser_gets_the_chinese_page(index, tmp_path):
    """``serve`` (``--lang auto``, the default) in a headless Chromium whose language is zh-CN: tabs, labels, the
    header and a search's note in Chinese, the model table still there; the screenshot is kept for a look
    (``CH09_UI_ZH_SCREENSHOT``)."""
    import os
    import socket
    from pathlib import Path

    from headless import launch, require_chromium
    from playwright.sync_api import sync_playwright

    from chapter09.capstone.web.serve import serve

    require_chromium()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = serve(index, port=port, settings=Settings("toy"), block=False)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}", timeout=60_000)
            page.wait_for_function("document.querySelector('#toy-banner') && "
                                   "document.querySelector('#toy-banner').innerText.includes('玩具世界')",
                                   timeout=60_000)
            table = page.locator("#model-table").inner_text()
            assert all(role in table for role in ROLES) and "玩具孪生" in table
            body = page.inner_text("body")
            for shown in ("检索", "描述", "匹配", "查询（中文或英文）", "中文查询策略", "筛选（作用于上面的每一种检索）"):
                assert shown in body, shown
            assert "Find similar" not in body and "Results (click one)" not in body
            page.locator("#query textarea, #query input").first.fill("红色圆形")
            page.locator("#search-button").click()
            page.wait_for_function("document.querySelector('#search-note') && "
                                   "document.querySelector('#search-note').innerText.includes('张图片中做')",
                                   timeout=60_000)
            page.locator("#results img").first.wait_for(timeout=30_000)
            shot = Path(os.environ.get("CH09_UI_ZH_SCREENSHOT", tmp_path / "ui-zh.png"))
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            # the Chinese is drawn with a font that has it: a CJK glyph is about square, as wide as tall
            width = page.evaluate("""() => { const s = document.createElement('span'); s.textContent = '检索检索检索';
                                     s.style.cssText = 'font-size: 20px; position: absolute;'
                                         + 'display: inline-block; white-space: nowrap';
                                     document.body.appendChild(s);
                                     const w = s.getBoundingClientRect().width; s.remove(); return w; }""")
            assert 100 <= width <= 140, width
            browser.close()
    finally:
        app.close()


def test_the_duplicates_panels_follow_the_page_or_the_browser(chinese_app):
    from chapter09.capstone.web.duplicates import DuplicatesView
    from chapter09.capstone.web.handlers import Handlers

    _, library = chinese_app
    chinese = DuplicatesView(library, Handlers(library, lang="zh"))
    exact, near, found = call(chinese.duplicates, 0.97, request=FakeRequest())
    for panel in (exact, near):
        shown = re.sub(r"<[^>]+>", " ", panel)
        assert CJK.search(shown) and not english_left(shown, set(library.top_folders())), shown
    assert "完全相同的副本" in exact and "近似副本（余弦 ≥ 0.97）" in near
    auto = DuplicatesView(library, Handlers(library, lang="auto"))
    exact, near, again = call(auto.duplicates, 0.97, request=FakeRequest("en-US,en;q=0.9"))
    assert "exact copies" in exact and "near copies (cosine ≥ 0.97)" in near and not CJK.search(exact + near)
    assert again == found  # the groups themselves do not depend on the language
    with pytest.raises(gr.Error, match="threshold"):
        call(chinese.duplicates, "lots", request=FakeRequest())

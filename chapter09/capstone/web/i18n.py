"""The web UI in English and Chinese: one table of the page's words (``WORDS``: key -> (English, Chinese)), the
language a page is built in, and the language each request is answered in.

``serve --lang en|zh|auto`` (default ``auto``):

* ``en`` / ``zh``: the page is built with the words of that language, and every message is in it.
* ``auto``: the page is built with Gradio's ``gr.I18n`` keys, which the browser resolves by its own language
  (``navigator.language``: zh, zh-CN, zh-TW... read Chinese; anything else English); what the server writes (the
  header, notes under the results, error messages) follows each request's ``Accept-Language``. A message written
  before the request is known (an upload that is not an image, refused while Gradio reads it) says both.

Messages are picked by ``say(en, zh)``, the project's one helper (``exercises.i18n.t``) inside the request's
``speaking`` block, so the library's own messages (a query error) come in the request's language too.
"""
from __future__ import annotations

from ...errors import UsageError
from ...exercises.i18n import SPEAKING, speaking, t
from ..search.dedup import NEAR_DUPLICATE_COSINE

LANGS = ("en", "zh", "auto")
BROWSER_CHINESE = ("zh", "zh-CN", "zh-SG", "zh-TW", "zh-HK", "zh-Hans", "zh-Hant")  # gr.I18n locales read as zh

# The page's words. English as the page has always shown them (some carry their Chinese beside them), Chinese
# alone. Proper names (CLIP, model ids, file types, strategy names) stay as they are in both.
WORDS: dict[str, tuple[str, str]] = {
    "title": ("Chapter 9 capstone: image library", "第 9 章综合项目：图片库"),
    "login": ("Chapter 9 image library: log in (serve --auth / --auth-file)",
              "第 9 章图片库：请登录（serve --auth / --auth-file）"),
    "heading": ("Image library search and captioning · 图片库检索与描述", "图片库检索与描述"),
    "toy_banner": ("TOY WORLD: tiny models trained on synthetic shapes; results on real photos are meaningless; "
                   "run with --models real",
                   "玩具世界：这些是在合成几何图形上训练的小模型，它们对真实照片给出的结果没有意义；"
                   "要用真实模型，请加 --models real 运行"),
    "images_searched": ("{images} images · {mode} search", "{images} 张图片 · {mode}搜索"),
    "exact": ("exact", "精确"), "ann": ("ann", "近似（IVF-SQ8）"),
    "exact over the matching rows": ("exact over the matching rows", "在匹配的行上精确搜索"),
    "captions": ("captions", "描述"),
    # the filters as a search reports them (``Filters.to_json``'s keys)
    "filter folder": ("folder", "文件夹"), "filter taken_after": ("taken_after", "拍摄不早于"),
    "filter taken_before": ("taken_before", "拍摄早于"), "filter camera": ("camera", "相机"),
    "filter types": ("types", "文件类型"), "filter min_size": ("min_size", "短边至少"),
    "filter place": ("place", "地点"), "filter near": ("near", "附近"),
    "filter min_width": ("min_width", "宽度至少"), "filter min_height": ("min_height", "高度至少"),
    "role": ("role", "角色"), "weights": ("weights", "权重"), "class": ("class", "类"), "location": ("location", "位置"),
    "toy twin": ("toy twin", "玩具孪生"), "real": ("real", "真实模型"), "unavailable": ("unavailable", "不可用"),
    "tab_search": ("Search 检索", "检索"), "tab_caption": ("Caption 描述", "描述"), "tab_match": ("Match 匹配", "匹配"),
    "tab_duplicates": ("Duplicates 重复", "重复"),
    "results": ("Results (click one)", "结果（点击一个查看）"),
    "selected": ("selected", "已选中"),
    "find_similar": ("Find similar", "找相似的"),
    "caption_this": ("Caption this", "为它生成描述"),
    "caption_en": ("caption (English)", "描述（英文）"),
    "caption_zh": ("描述 (中文)", "描述（中文）"),
    "ocr_row": ("…or search the text in the photos 按图中文字检索 (signs, receipts, screenshots)",
                "……或者按图中的文字检索（招牌、小票、截图）"),
    "ocr_text": ("words written in the photos (index --ocr)", "照片里写的文字（需先运行 index --ocr）"),
    "ocr_hybrid": ("hybrid: fuse with the Query box's search by reciprocal rank", "混合：与查询框的检索按倒数排名融合"),
    "ocr_go": ("Search the photos' text", "检索图中文字"),
    "ocr_placeholder": ("exit / 出口", "出口 / 营业时间"),
    "filter ocr_text": ("ocr_text", "图中文字"),
    "query": ("Query (English or Chinese 中文)", "查询（中文或英文）"),
    "query_placeholder": ("a red circle at the top left / 左上方的红色圆形", "左上方的红色圆形"),
    "strategy": ("Chinese query strategy", "中文查询策略"),
    "k": ("results", "结果数"),
    "search": ("Search", "检索"),
    "by_example": ("…or search by an example image", "……或者用一张示例图片检索"),
    "example_image": ("Example image", "示例图片"),
    "find_like": ("Find images like this", "找和它相似的图片"),
    "combine": ("…or combine: a text and/or an image, plus terms to add or subtract 组合检索",
                "……或者组合检索：一段文本和/或一张图片，再加上或减去若干项"),
    "base_text": ("text (2:text weighs it twice)", "文本（写成 2:文本 表示两倍权重）"),
    "base_text_placeholder": ("a dog on a beach / 海滩上的狗", "海滩上的狗"),
    "base_image": ("and/or an image", "和/或一张图片"),
    "term 1": ("term 1", "第 1 项"), "term 2": ("term 2", "第 2 项"), "term 3": ("term 3", "第 3 项"),
    "text": ("text", "文本"), "image": ("image", "图片"), "this hit": ("this hit", "这个结果"),
    "add": ("add", "加上"), "subtract": ("subtract", "减去"),
    "sign": ("add or subtract", "加上还是减去"),
    "term_value": ("text, or the hit's path", "文本，或结果的路径"),
    "weight": ("weight", "权重"),
    "use_hit": ("use the selected hit", "使用选中的结果"),
    "search_combination": ("Search the combination", "按组合检索"),
    "caption_words": ("…or search the captions' words 按描述文字检索 (English or 中文)",
                      "……或者按描述里的文字检索（中文或英文）"),
    "caption_text": ("words the stored captions contain (caption --index)",
                     "已存储的描述里包含的词（由 caption --index 生成）"),
    "caption_text_placeholder": ("zebra / 斑马", "斑马"),
    "hybrid": ("hybrid: fuse with the Query box's search by reciprocal rank", "混合：与查询框的检索按倒数排名融合"),
    "search_captions": ("Search the captions", "检索描述"),
    "filters": ("Filters 筛选 (every search above)", "筛选（作用于上面的每一种检索）"),
    "whole_library": ("(whole library)", "（整个图库）"),
    "folder": ("folder (or type a sub-folder)", "文件夹（也可以输入子文件夹）"),
    "taken_after": ("taken on or after (ISO date)", "拍摄于该日或之后（ISO 日期）"),
    "taken_before": ("taken before (ISO date)", "拍摄于该日之前（ISO 日期）"),
    "camera": ("camera (part of make or model)", "相机（厂商或型号的一部分）"),
    "types": ("file types (none ticked: all)", "文件类型（都不勾选：全部）"),
    "min_size": ("shorter side at least (px)", "短边至少（像素）"),
    "place": ("place 地点 (city, region or country, English or 中文; EXIF GPS)",
              "地点（城市、地区或国家，中文或英文；来自 EXIF GPS）"),
    "near": ("near: LAT,LON,KM (within KM km)", "附近：纬度,经度,公里数（KM 公里以内）"),
    "place_placeholder": ("Hangzhou / 杭州 / France", "杭州 / 北京 / 巴黎"),
    "near_placeholder": ("30.27,120.15,50", "30.27,120.15,50（纬度,经度,公里）"),
    # the Duplicates tab (web/duplicates.py); the default threshold is dedup's, written in as a number because
    # a browser-resolved key (serve --lang auto) takes no fields
    "duplicates_explained": (
        "**Exact copies** have the same bytes (the SHA-1 the index stores). **Near copies** are images whose CLIP "
        "vectors have a cosine similarity of at least the threshold: "
        f"{NEAR_DUPLICATE_COSINE} (the default) catches resized and re-compressed copies of one photo; lower it to "
        "also group burst shots and edits (and, lower still, different photos of one scene); 1.0 keeps only "
        "identical vectors. Nothing is deleted here: remove the copies you do not want yourself, then run `index` "
        "again. 完全相同的副本按 SHA-1 分组；近似副本按 CLIP 向量的余弦相似度（不低于阈值）分组。此页只显示，不删除任何文件。",
        "**完全相同的副本**字节完全一样（索引中存储的哈希值相同）。**近似副本**是 CLIP 向量余弦相似度不低于阈值的图片："
        f"默认值 {NEAR_DUPLICATE_COSINE} 能找出同一张照片缩放或重新压缩后的副本；调低阈值，连拍和修图也会归为一组"
        "（再低一些，同一场景的不同照片也会）；1.0 只保留向量完全相同的图片。这里不会删除任何文件：请自己删除不想要的副本，"
        "然后重新运行 `index`。"),
    "duplicates_threshold": ("near-copy threshold (cosine) 近似阈值", "近似副本阈值（余弦相似度）"),
    "find_duplicates": ("Find duplicates 查找重复", "查找重复"),
    "image_upload": ("Image", "图片"),
    "caption": ("Caption", "生成描述"),
    "english": ("English", "英文"), "chinese": ("中文", "中文"),
    "match_texts": ("Captions, one per line (English or 中文)", "描述，每行一条（中文或英文）"),
    "score": ("Score", "打分"),
    "cosine": ("cosine similarity", "余弦相似度"),
}


def checked_lang(value: str) -> str:
    """``serve --lang``'s value, or the message naming the flag."""
    if value not in LANGS:
        raise UsageError(f"serve --lang {value!r}: choose one of {', '.join(LANGS)} (auto: the browser's language)")
    return value


def browser_lang(accept_language: str | None) -> str:
    """``en`` or ``zh`` from an ``Accept-Language`` header: the first of the two the browser prefers, by q-value
    (``zh-CN,zh;q=0.9,en;q=0.8`` -> zh; no header, or neither named -> en)."""
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        try:
            weight = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("en", "zh") and weight > 0:
            ranked.append((-weight, position, primary))
    return min(ranked)[2] if ranked else "en"


def request_lang(page_lang: str, request) -> str:
    """The language to answer ``request`` in: the page's, or for ``auto`` its browser's (no request: English)."""
    if page_lang != "auto":
        return page_lang
    headers = getattr(request, "headers", None)
    return browser_lang(headers.get("accept-language") if headers is not None else None)


def word(key: str, lang: str, **fields) -> str:
    """The page's word ``key`` in ``lang`` (``en`` or ``zh``), its ``{fields}`` filled."""
    english, chinese = WORDS[key]
    return t(english, chinese, lang).format(**fields)


def say(english: str, chinese: str) -> str:
    """A message in the language being spoken (the request's); outside a request of a page built ``auto``: both."""
    lang = SPEAKING.get()
    if lang in (None, "auto"):
        return english if english == chinese else f"{english} / {chinese}"
    return t(english, chinese, lang)


class PageWords:
    """The words a page is built with: plain text for ``en``/``zh``, Gradio ``I18n`` keys for ``auto`` (resolved by
    the browser; ``translations()`` goes to ``launch(i18n=...)``)."""

    def __init__(self, lang: str):
        self.lang = checked_lang(lang)
        self._i18n = None
        if self.lang == "auto":
            import gradio as gr  # heavy: only where a page is built

            chinese = {key: pair[1] for key, pair in WORDS.items()}
            self._i18n = gr.I18n(en={key: pair[0] for key, pair in WORDS.items()},
                                 **{locale: chinese for locale in BROWSER_CHINESE})

    def __call__(self, key: str):
        return self._i18n(key) if self._i18n is not None else word(key, self.lang)

    def choices(self, values) -> list[tuple]:
        """(label, value) pairs for a radio or dropdown: the label in the page's words, the value the API's."""
        return [(self(value), value) for value in values]

    def translations(self):
        """The ``gr.I18n`` for ``launch(i18n=...)`` (None for a page in one language)."""
        return self._i18n

    def plain(self, key: str) -> str:
        """``key``'s words where no browser resolves them (the login page, the window title): the page's language,
        both for ``auto``."""
        if self.lang != "auto":
            return word(key, self.lang)
        english, chinese = WORDS[key]
        return f"{english} / {chinese}"

    def speaking(self, lang: str | None = None):
        """The block in which messages are said in ``lang`` (default: the page's; ``auto``: both)."""
        return speaking(lang or self.lang)

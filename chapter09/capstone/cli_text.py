"""The command line's text output: the words ``search``, ``dedup`` and ``match`` print (``--json`` prints the
records instead). Pure formatting: nothing here searches or loads a model."""
from __future__ import annotations

from ..exercises.i18n import t
from .web.i18n import WORDS


def zh_word(word: str) -> str:
    """A search's own word (exact, ann, how a filter searched) in Chinese, from the web UI's table."""
    return WORDS.get(word, (word, word))[1]


def search_lines(result, searcher, strategy: str, route: str | None = None, absolute=None) -> list[str]:
    """``search``'s text output (in the run's language: ``--lang`` / ``$CH09_LANG``); ``--json`` prints the record.
    The quick search gives the ``route`` line and ``absolute`` (library path -> file) instead of a ``searcher``."""
    from .index.video import clock, unit_of  # here, not at the top: the quick search's imports stay light

    absolute = absolute or searcher.store.absolute
    ann = (t(f", IVF nprobe {result.ann_nprobe}, ANN recall@10 vs exact {result.ann_recall_at_10:.3f}",
             f"，IVF nprobe {result.ann_nprobe}，ANN 相对精确搜索的 recall@10 {result.ann_recall_at_10:.3f}")
           if result.ann_recall_at_10 is not None else "")
    lines = [t(f"{result.strategy} search ({result.search}, {result.library_size} images, {result.ms} ms)",
               f"{result.strategy} 检索（{zh_word(result.search)}，{result.library_size} 张图片，{result.ms} ms）") + ann]
    if len(result.terms) > 1:
        lines.append(t("  terms: ", "  搜索项：")
                     + " ".join(f"{x['weight']:+g}*{x['kind']}:{x['value']}" for x in result.terms))
    if result.query and result.query_kind in ("text", "hybrid"):  # why this route
        if route is None:
            from .search.queries import route_reason  # light: the quick search passes route, never loads this

            route = route_reason(strategy, result.query)
        lines.append("  " + route)
    if result.encoded_text and result.encoded_text != result.query:
        lines.append(t("  query encoded as: ", "  实际编码的查询：") + result.encoded_text)
    fused = result.query_kind == "hybrid"
    if result.caption_text:
        lines.append(t(f"  caption text: {result.caption_text}", f"  描述文字：{result.caption_text}") + (
            t(" (fused with the vector ranking by reciprocal rank; scores are RRF)", "（与向量排名按倒数排名融合；分数是 RRF）")
            if fused else t(" (scores are BM25)", "（分数是 BM25）")))
    if result.ocr_text:
        lines.append(t(f"  text in photos: {result.ocr_text}", f"  图中文字：{result.ocr_text}") + (
            t(" (fused by reciprocal rank; scores are RRF)", "（按倒数排名融合；分数是 RRF）")
            if fused or result.caption_text else t(" (scores are BM25)", "（分数是 BM25）")))
    if result.filters is not None:
        said = "; ".join(f"{k} {v}" for k, v in result.filters.items())
        said_zh = "；".join(f"{zh_word('filter ' + k)} {v}" for k, v in result.filters.items())
        lines.append(t(f"  filter: {said} -> {result.matching} of {result.library_size} images match "
                       f"({result.filter_how})",
                       f"  筛选：{said_zh} -> {result.library_size} 张图片中有 {result.matching} 张符合（{zh_word(result.filter_how)}）"))
    lines += [t(f"  note: {note}", f"  说明：{note}") for note in result.notes]
    for h in result.hits:
        shown = absolute(h.path) if h.time_s is None else \
            f"{absolute(unit_of(h.path))} @ {clock(h.time_s)}"  # a video's frame: the moment
        lines.append(f"  {h.rank:>3}. {h.score:.3f}  {shown}"
                     + (f"  @ {place_text(h)}" if h.place or h.lat is not None else ""))
        lines += [f"         [{lang}] {text}" for lang, text in h.captions.items()]
        if h.ocr_text:
            lines.append(f"         [{t('text', '文字')}] {' | '.join(h.ocr_text.splitlines())[:200]}"
                         + (t("  (matched: ", "  （匹配：") + ", ".join(h.ocr_match) + t(")", "）")
                            if h.ocr_match else ""))
    return lines


def place_text(hit: dict) -> str:
    """Where a hit was taken, for the text output: 'Hangzhou 杭州, Zhejiang Sheng, CN (30.2741, 120.1551)'."""
    place = hit.get("place") or {}
    city = " ".join(v for v in (place.get("name"), place.get("name_zh")) if v)
    named = ", ".join(v for v in (city, place.get("admin"), place.get("country")) if v)
    position = f"({hit['lat']:.4f}, {hit['lon']:.4f})" if hit.get("lat") is not None else ""
    return " ".join(v for v in (named, position) if v)


def dedup_lines(result: dict) -> list[str]:
    """``dedup``'s text output: the groups of identical files, then the near-duplicate pairs (the first 50)."""
    lines = [f"exact duplicates (same bytes): {len(result['exact_groups'])} groups"]
    lines += ["  " + "  ==  ".join(group) for group in result["exact_groups"]]
    lines.append(f"near duplicates (cosine >= {result['threshold']}): {len(result['near_pairs'])} pairs")
    lines += [f"  {p['cosine']:.4f}  {p['a']}  ~  {p['b']}" for p in result["near_pairs"][:50]]
    return lines


def match_lines(rows: list[dict]) -> list[str]:
    """``match``'s text output: each text's score and probability, best first, and what the encoder read."""
    return [f"  {r['score']:+.3f}  p={r['probability']:.3f}  {r['text']}" + (
        f"   (read as: {r['encoded_text']})" if r["encoded_text"] != r["text"] else "")
        for r in sorted(rows, key=lambda r: -r["score"])]

"""Gradio inputs that answer an API call's odd value (null, a string for a number, a file that is not an image)
with a one-line message naming the field, where Gradio's own preprocessing would end in a bare "Error".

Each wraps one instance's ``preprocess``: a subclass of a Gradio component would make Gradio write a .pyi stub
beside this module."""
from __future__ import annotations

import gradio as gr
from PIL import UnidentifiedImageError

from ...exercises.i18n import SPEAKING, speaking
from .checks import MAX_K, MAX_WEIGHT, checked_k, checked_weight
from .i18n import WORDS, say


def tolerant(component, what: str, empty=None, coerce=None):
    """``component`` (a Gradio component) whose preprocessing answers an API call's odd value (null, a string
    for a number) with a one-line message naming the field. Gradio's own raises a TypeError there before any
    code of ours runs, which an API user sees only as a bare "the app raised an exception". (The instance's
    method is wrapped: a subclass would make Gradio write a .pyi stub beside this file.)"""
    preprocess = component.preprocess
    lang = SPEAKING.get() or "auto"  # the page's language, as it is built (``what``: a key of ``i18n.WORDS``)
    english, chinese = WORDS.get(what, (what, what))

    def read(payload):
        with speaking(lang):
            if payload is None and empty is not None:
                payload = empty
            if coerce is not None:  # a field's own reading of what an API call sent, with its own message
                payload = coerce(payload)
            try:
                return preprocess(payload)
            except gr.Error:  # Gradio's own message (a value not among the choices, over the maximum)
                raise
            except (TypeError, ValueError):
                shown = repr(str(payload)[:40])
                raise gr.Error(say(f"{english}: {shown} is not a value this field takes",
                                   f"{chinese}：{shown} 不是这个字段接受的值")) from None

    component.preprocess = read
    return component


def image_input(**kwargs):
    """gr.Image that hands over the file path and refuses a non-image with a clear message.

    (gr.Image opens every upload with PIL before the event function runs; a text file would
    end in a bare "Error". The check wraps this one instance's preprocess: a subclass of a
    Gradio component would make Gradio write a .pyi stub beside this module.)
    """
    component = gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs)
    preprocess = component.preprocess
    lang = SPEAKING.get() or "auto"  # the page's language, as it is built

    def checked(payload):
        try:
            return preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            name = getattr(payload, "orig_name", None)
            with speaking(lang):
                raise gr.Error(say(f"{name or 'the upload'} is not an image this server can read "
                                   f"(JPEG, PNG, WebP, HEIC, AVIF, ...): {type(error).__name__}",
                                   f"{name or '上传的文件'} 不是本服务器能读取的图片"
                                   f"（JPEG、PNG、WebP、HEIC、AVIF……）：{type(error).__name__}")) from None

    component.preprocess = checked
    return component


def k_input(**kwargs):
    """The results slider, whose API value a non-number ("lots") gets a message instead of a bare error."""
    component = gr.Slider(1, MAX_K, value=8, step=1, **{"label": "results", **kwargs})
    preprocess = component.preprocess
    lang = SPEAKING.get() or "auto"  # the page's language, as it is built

    def checked(payload):
        if not isinstance(payload, (int, float)) or isinstance(payload, bool):
            with speaking(lang):
                payload = checked_k(payload)  # "8" becomes 8; anything else gets its message
        return preprocess(payload)

    component.preprocess = checked
    return component



def weight_input(where: str, **kwargs):
    """A term's weight, whose API value a non-number ("lots") gets a message instead of a bare error."""
    def checked(payload):
        if payload is not None and (not isinstance(payload, (int, float)) or isinstance(payload, bool)):
            payload = checked_weight(payload, where)  # "2" becomes 2.0; anything else gets its message
        return payload

    number = gr.Number(value=1, minimum=-MAX_WEIGHT, maximum=MAX_WEIGHT, **{"label": "weight", **kwargs})
    return tolerant(number, f"{where} weight", coerce=checked)


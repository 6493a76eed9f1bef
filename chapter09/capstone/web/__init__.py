"""The web UI in parts: ``access`` (logins, exposure, per-client limits), ``checks`` (every input's check and the
one-line messages), ``library`` (the UI's view of an index: searches, thumbnails, hits, uploads), ``handlers``
(one method per API endpoint, each through one wrapper), ``components`` (Gradio inputs that refuse odd API values
with a message), ``i18n`` (the page's words in English and Chinese, and each request's language) and ``page`` (the
layout and its wiring). ``serve.py`` (here) starts it."""
import os

# Private photos: no usage reports, no version checks. Set here, before any module of this package imports Gradio.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

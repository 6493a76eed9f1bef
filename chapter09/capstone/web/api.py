"""The JSON HTTP API beside the page: ``/api/search`` (GET: text, library images, terms, filters, caption text),
``/api/search/image`` (POST: an uploaded image), ``/api/thumbnail/PATH`` and ``/api/original/PATH`` (cacheable
files), ``/api/openapi.json`` and ``/api/docs``.

Why a second API: Gradio's routes (``/gradio_api/call/...``) queue each call and answer through an event stream,
which costs a few hundred milliseconds a search where the search itself takes one; this one answers a search in one
plain request. It adds no logic of its own: every search builds the ``search.SearchRequest`` that the command line's
``search`` builds and runs it through ``WebLibrary.search`` (``LibrarySearch.run``), so its hits and scores are the
command line's; behind the page's login (HTTP Basic with the same users, or the page's session cookie) and the
page's per-client limits (one ``ClientLimiter`` for both). A client never names a file of this machine: an image
is a path the index holds (its stored vector) or an upload, and files are served only from inside the library.
"""
import base64
import binascii
import hashlib
import json
import mimetypes
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from ...errors import ChapterError
from ...images import BadImageError, load_image
from ..errors import StoreError
from ..index.video import split_key
from ..search.filters import Filters
from ..search.library_search import IMAGE_SUFFIXES, SearchRequest, Term
from ..search.queries import STRATEGIES, parse_weighted
from .access import ClientLimiter, SlowDown
from .checks import MAX_K, MAX_QUERY_CHARS, MAX_WEIGHT
from .library import WebLibrary, inside
from .thumbnails import content_key

PREFIX = "/api"
MAX_TERMS = 10  # add + subtract terms one search takes
THUMBNAIL_CACHE = "private, max-age=31536000, immutable"  # a URL naming the content (?v=its sha1) never changes
REVALIDATE = "private, no-cache"  # anything else: kept, but asked again (an ETag makes that a 304)


class ApiError(ChapterError):
    """An answer other than 200, with its status and the message the JSON carries."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@dataclass(frozen=True)
class SearchQuery:
    """What ``/api/search`` was asked, as the command line's ``search`` flags are (same names, ``type`` for
    ``--type``); checked where made. ``image``, ``add``, ``subtract``: ``[WEIGHT:]`` then a text or a path the
    index holds (relative to the library); ``image`` must be such a path."""

    text: str | None = None
    image: str | None = None
    add: tuple[str, ...] = ()
    subtract: tuple[str, ...] = ()
    caption_text: str | None = None
    hybrid: bool = False
    k: int = 10
    strategy: str = "auto"
    folder: str | None = None
    taken_after: str | None = None
    taken_before: str | None = None
    camera: str | None = None
    type: str | None = None
    min_size: int | None = None
    min_width: int | None = None
    min_height: int | None = None
    place: str | None = None
    near: str | None = None
    ocr_text: str | None = None

    def __post_init__(self):
        for name in ("text", "image", "caption_text", "place", "near", "ocr_text"):
            _check_text(name, getattr(self, name))
        for name in ("add", "subtract"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
            for value in getattr(self, name):
                _check_text(name, value)
        if len(self.add) + len(self.subtract) > MAX_TERMS:
            raise ApiError(400, f"add/subtract: at most {MAX_TERMS} terms in one search")
        if self.strategy not in STRATEGIES:
            raise ApiError(400, f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy[:40]!r}")


def _check_text(name: str, value) -> None:
    if value is not None and len(value) > MAX_QUERY_CHARS:
        raise ApiError(400, f"{name} is {len(value):,} characters long; this server reads at most {MAX_QUERY_CHARS}")


def search_query(text: str | None = None,
                 image: Annotated[str | None, Query(description="a path the index holds")] = None,
                 add: Annotated[list[str] | None, Query()] = None, subtract: Annotated[list[str] | None, Query()] = None,
                 caption_text: str | None = None, hybrid: bool = False, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                 strategy: str = "auto", folder: str | None = None, taken_after: str | None = None,
                 taken_before: str | None = None, camera: str | None = None,
                 type: Annotated[str | None, Query(description="a comma list: jpeg,png,webp,heif,...")] = None,
                 min_size: Annotated[int | None, Query(ge=1)] = None, min_width: Annotated[int | None, Query(ge=1)] = None,
                 min_height: Annotated[int | None, Query(ge=1)] = None,
                 place: Annotated[str | None, Query(description="a city, region or country (English or 中文)")] = None,
                 near: Annotated[str | None, Query(description="LAT,LON,KM: within KM km")] = None,
                 ocr_text: Annotated[str | None, Query(description="words written in the photos (index --ocr)")] = None,
                 ) -> SearchQuery:
    """The query string as a ``SearchQuery`` (FastAPI reads these parameters, and documents them)."""
    return SearchQuery(text, image, tuple(add or ()), tuple(subtract or ()), caption_text, hybrid, k, strategy, folder,
                       taken_after, taken_before, camera, type, min_size, min_width, min_height, place, near,
                       ocr_text)


def search_request(library: WebLibrary, query: SearchQuery, upload=None) -> SearchRequest:
    """The ``SearchRequest`` the command line builds from the same flags (``__main__.search_request``): ``text``
    (``[WEIGHT:]TEXT``), then the image (an ``upload``, or ``image``: an indexed path), then ``add`` and
    ``subtract``; the filters parsed by ``Filters.parse``. Paths are looked up in the index, never read."""
    terms = []
    if query.text is not None:
        weight, text = parse_weighted(query.text)
        terms.append(Term("text", text, weight))
    if upload is not None:
        terms.append(Term("image", upload))
    if query.image is not None:
        term = indexed_or_text(library, query.image)
        if term.kind != "indexed":
            raise ApiError(404, f"image={query.image[:200]}: the index holds no image at that path (give it as "
                                "search answers it, relative to the library, or upload the image)")
        terms.append(term)
    terms += [indexed_or_text(library, raw) for raw in query.add]
    terms += [indexed_or_text(library, raw, -1.0) for raw in query.subtract]
    filters = Filters.parse(query.folder, query.taken_after, query.taken_before, query.camera, query.type,
                            query.min_size, query.min_width, query.min_height, query.place, query.near,
                            library=str(library.root))
    return SearchRequest(tuple(terms), query.k, query.strategy, filters, query.caption_text, query.hybrid,
                         ocr_text=query.ocr_text)


def indexed_or_text(library: WebLibrary, raw: str, sign: float = 1.0) -> Term:
    """``[WEIGHT:]VALUE`` as a term: an indexed path's stored vector, else a text; a value that looks like an
    image file the index does not hold is refused (the command line would read such a file; a server must not)."""
    weight, value = parse_weighted(raw)
    if not value or abs(weight) > MAX_WEIGHT:
        raise ApiError(400, f"the term {raw[:60]!r}: give [WEIGHT:]TEXT or [WEIGHT:]PATH with a weight from "
                            f"-{MAX_WEIGHT:g} to {MAX_WEIGHT:g}")
    relative = value.replace("\\", "/").removeprefix("./")
    if library.searcher.holds(relative):
        return Term("indexed", relative, sign * weight)
    if Path(relative).suffix.lower() in IMAGE_SUFFIXES:
        raise ApiError(404, f"{value[:200]}: the index holds no image at that path in the library")
    return Term("text", value, sign * weight)


def answer(result, warnings: list[str], root_path: str) -> dict:
    """``search --json``'s dict (JSON as the command line writes it), each hit with the URLs of its thumbnail
    (naming its content, so it can be cached for good) and its original, and the search's warnings."""
    out = json.loads(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    for hit in out["hits"]:
        where = quote(hit["path"])
        version = (hit.get("indexed") or {}).get("sha1")
        hit["thumbnail"] = f"{root_path}/thumbnail/{where}" + (f"?v={version}" if version else "")
        file, time_s = split_key(hit["path"])  # a video's frame: the video, played from that moment
        hit["original"] = f"{root_path}/original/{quote(file)}" + (f"#t={time_s:.2f}" if time_s is not None else "")
    out["warnings"] = list(warnings)
    return out


def file_answer(request: Request, path: Path, cache_control: str, media_type: str | None = None) -> Response:
    """``path`` with an ETag (its name, size and modification time) and ``cache_control``; 304 without a body
    when the client's If-None-Match holds that ETag."""
    stat = path.stat()
    named = hashlib.sha1(path.name.encode()).hexdigest()[:8]  # not hash(): that changes with every process
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}-{named}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    held = [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]
    if etag in held or "*" in held:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type or mimetypes.guess_type(path.name)[0] or
                        "application/octet-stream", headers=headers)


def basic_login(header: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, or None if it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "the Authorization header is not HTTP Basic's base64 of USER:PASSWORD",
                       {"WWW-Authenticate": 'Basic realm="chapter09"'}) from None
    return (user, password) if colon else None


def gradio_session_user(server_app_of):
    """request -> the user the page's login cookie names (Gradio's session), or None. ``server_app_of``: returns the
    page's server (Gradio's FastAPI app), asked per request because the API is handed over before it exists."""
    def user(request: Request) -> str | None:
        server_app = server_app_of()
        token = request.cookies.get(f"access-token-{server_app.cookie_id}") or \
            request.cookies.get(f"access-token-unsecure-{server_app.cookie_id}")
        return server_app.tokens.get(token) if token else None
    return user


class Api:
    """The API's routes over one ``WebLibrary``, its logins and its clients' limits."""

    def __init__(self, library: WebLibrary, limiter: ClientLimiter, logins=(), session_user=None):
        self.library, self.limiter, self.logins = library, limiter, list(logins)
        self.session_user = session_user  # the page's cookie, when served beside it

    def user(self, request: Request) -> str | None:
        """The logged-in user (None when the server has no login); 401 without a valid login."""
        if not self.logins:
            return None
        given = basic_login(request.headers.get("authorization", ""))
        if given is not None:
            user, password = (part.encode() for part in given)
            if any(secrets.compare_digest(user, u.encode()) & secrets.compare_digest(password, p.encode())
                   for u, p in self.logins):
                return given[0]
        elif self.session_user is not None and (user := self.session_user(request)):
            return user
        raise ApiError(401, "log in: HTTP Basic with a serve login (curl -u USER:PASSWORD) or the page's "
                            "session cookie", {"WWW-Authenticate": 'Basic realm="chapter09"'})

    def searched(self, request: Request, user: str | None, query: SearchQuery, upload=None) -> dict:
        who = ClientLimiter.client(SimpleNamespace(username=user, client=request.client))
        with self.limiter.hold(who):
            result, warnings = self.library.search(search_request(self.library, query, upload))
        return answer(result, warnings, request.scope.get("root_path", "").rstrip("/"))

    def library_file(self, relative: str) -> Path:
        path = inside(self.library.root, relative)
        if path is None:
            raise ApiError(404, f"{relative[:200]}: no such file in the library")
        return path

    def thumbnail(self, request: Request, relative: str, version: str | None) -> Response:
        file, time_s = split_key(relative)  # a video's frame: that frame's thumbnail
        path = self.library_file(file)
        thumb = self.library.thumbnail(path, time_s=time_s)
        if thumb is None:
            raise ApiError(404, f"{relative[:200]}: not an image this server can read")
        fixed = version is not None and version == content_key(path)
        return file_answer(request, thumb, THUMBNAIL_CACHE if fixed else REVALIDATE, "image/jpeg")

    def original(self, request: Request, relative: str) -> Response:
        """The file (a video's frame key: the video), Range requests answered (206) so a player can seek."""
        return file_answer(request, self.library.viewable(self.library_file(split_key(relative)[0])), REVALIDATE)

    def upload(self, image: UploadFile):
        """The uploaded file as an RGB image (413 over the upload limit, 400 if it is no image)."""
        with tempfile.NamedTemporaryFile(suffix=Path(image.filename or "").suffix[:10]) as copy:
            shutil.copyfileobj(image.file, copy, 1 << 20)
            if copy.tell() > self.library.max_upload_bytes:
                raise ApiError(413, f"the upload is over this server's limit of {self.library.max_upload_mb:g} MB "
                                    "(serve --max-upload-mb)")
            copy.flush()
            try:
                return load_image(copy.name)
            except BadImageError as error:  # its message names the temporary copy: name the upload instead
                raise ApiError(400, f"{image.filename or 'the upload'} is not an image this server can read: "
                                    f"{str(error).replace(copy.name + ': ', '')}") from None


def build_api(library: WebLibrary, limiter: ClientLimiter, logins=(), session_user=None) -> FastAPI:
    """The API as a FastAPI app (mounted at ``/api`` by ``mount``; tests call it on its own)."""
    api = Api(library, limiter, logins, session_user)
    app = FastAPI(title="Chapter 9 image library API", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  description=__doc__)
    Login = Annotated[str | None, Depends(api.user)]  # noqa: N806 (a type, read by FastAPI)
    Asked = Annotated[SearchQuery, Depends(search_query)]  # noqa: N806

    @app.get("/search", summary="search by text, library images, combined terms, filters, caption text")
    def search(request: Request, query: Asked, user: Login):
        return api.searched(request, user, query)

    @app.post("/search/image", summary="search by an uploaded image (multipart field 'image'), with any of "
                                       "/search's parameters in the query string")
    def search_image(request: Request, image: Annotated[UploadFile, File()], query: Asked, user: Login):
        return api.searched(request, user, query, api.upload(image))

    @app.get("/thumbnail/{relative:path}", summary="a library image's thumbnail (JPEG, ETag, Cache-Control)")
    def thumbnail(request: Request, relative: str, user: Login, v: str | None = None):
        return api.thumbnail(request, relative, v)

    @app.get("/original/{relative:path}", summary="a library image as a browser shows it (ETag, Cache-Control)")
    def original(request: Request, relative: str, user: Login):
        return api.original(request, relative)

    @app.middleware("http")
    async def refuse_large_uploads(request: Request, call_next):
        """An upload over the limit refused before its body is read (Content-Length), not spooled to disk."""
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit() and \
                int(length) > library.max_upload_bytes + 64 * 1024:  # the multipart envelope
            return error_json(413, f"the upload is over this server's limit of {library.max_upload_mb:g} MB "
                                   "(serve --max-upload-mb)")
        return await call_next(request)

    add_error_answers(app)
    return app


def error_json(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def add_error_answers(app: FastAPI) -> None:
    """Every refusal as ``{"error": message}``: 400 a bad request, 401 no login, 404 no such file, 413 an upload
    too large, 429 slow down, 503 the index changing under the search."""
    @app.exception_handler(ApiError)
    async def api_error(request, error: ApiError):
        return error_json(error.status, str(error), error.headers)

    @app.exception_handler(SlowDown)
    async def slow_down(request, error: SlowDown):
        return error_json(429, str(error), {"Retry-After": str(max(1, round(error.retry_after)))})

    @app.exception_handler(ChapterError)
    async def chapter_error(request, error: ChapterError):
        return error_json(503 if isinstance(error, StoreError) else 400, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        said = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                         for e in error.errors())
        return error_json(400, said)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        return error_json(error.status_code, str(error.detail), getattr(error, "headers", None))


def mounted(api: FastAPI) -> Mount:
    """``api`` at ``/api``: a route for the page's server to start with (``launch(app_kwargs={"routes": [...]})``),
    so it answers from the server's first request and comes before Gradio's own routes."""
    return Mount(PREFIX, app=api)

"""The options of a run, as frozen objects that check their own values once, where they are made: the command
line, ``watch``, the bench and Python callers build the same objects and get the same one-line message, naming
the flag, for a bad value.

* ``EngineOptions``: where the work runs (``--engine``, ``--ray-address``, ``--actors``, ``--gpus-per-actor``),
  for indexing and captioning alike.
* ``IndexOptions``: how ``build_index`` runs (batch size, decode workers, commits, excludes, ...).
* ``CaptionOptions``: how ``caption_index`` runs (languages, captioner, precision, batch size, commits, ...).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from ..captioning import check_caption_precision, check_captioner
from ..errors import UsageError
from ..language import LANGS
from .engines import ENGINES
from .index.video import VideoSampling
from .index.walk import exclude_patterns
from .store.database import COMMIT_ROWS


def _at_least(value, least: float, flag: str, what: str = "") -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or not math.isfinite(value) or value < least):
        raise UsageError(f"{flag} must be {what or f'at least {least:g}'}")


def parse_langs(langs: str | Sequence[str]) -> list[str]:
    """``--lang``: a comma list (or a sequence) of ``LANGS``, each once, in the order given."""
    chosen = [lang.strip() for lang in (langs.split(",") if isinstance(langs, str) else langs) if lang.strip()]
    unknown = [lang for lang in chosen if lang not in LANGS]
    if unknown or not chosen:
        raise UsageError(f"--lang takes a comma list of {', '.join(LANGS)} (got {langs!r})")
    return list(dict.fromkeys(chosen))


@dataclass(frozen=True)
class EngineOptions:
    """Where the work runs: ``local`` (decode workers here), or ``ray`` (a Ray cluster: ``ray_address``, else
    $RAY_ADDRESS, else a Ray of its own) with ``actors`` (None: sized from the cluster) of ``cpus_per_actor``
    CPUs and ``gpus_per_actor`` GPUs each."""

    engine: str = "local"
    ray_address: str | None = None
    actors: int | None = None
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        _at_least(self.actors, 1, "--actors", "a whole number, 1 or more")
        if self.actors is not None and int(self.actors) != self.actors:
            raise UsageError("--actors must be a whole number, 1 or more")
        _at_least(self.gpus_per_actor, 0, "--gpus-per-actor", "0 or more")
        _at_least(self.cpus_per_actor, 1e-9, "cpus_per_actor", "more than 0")

    @classmethod
    def from_args(cls, args) -> EngineOptions:
        """The engine flags of a parsed command line (``gpus_per_actor`` where the command has it)."""
        return cls(args.engine, args.ray_address, args.actors, getattr(args, "gpus_per_actor", 0.0) or 0.0)


ENGINE_FIELDS = tuple(f.name for f in fields(EngineOptions))


@dataclass(frozen=True)
class IndexOptions:
    """How ``build_index`` runs.

    ``stop_after`` (for tests of resumption) commits and stops after that many new images, as an interrupted run
    would. ``wait_s``: how long to wait for another run holding the index's lock (0: refuse at once).
    ``build_ann``: build the IVF index at the end when the table is large enough for ``search`` to use one (so
    ``serve`` opens ready). ``excludes``: globs of folders and files to leave out (``index.walk.is_excluded``),
    beside ``DEFAULT_EXCLUDES`` unless ``default_excludes`` is False. ``fill_metadata``: rows indexed before the
    metadata columns get them from a header read. ``ocr``: also read the text in every new or changed photo
    (``ocr_index``). ``video``: which frames of a video are indexed (``video.VideoSampling``).
    """

    batch_size: int = 64
    workers: int | None = None
    checkpoint_s: float = 20.0
    progress: bool = True
    stop_after: int | None = None
    commit_rows: int = COMMIT_ROWS
    wait_s: float = 0.0
    build_ann: bool = True
    excludes: tuple[str, ...] = ()
    default_excludes: bool = True
    fill_metadata: bool = True
    ocr: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    video: VideoSampling = field(default_factory=VideoSampling)

    def __post_init__(self):
        _at_least(self.batch_size, 1, "--batch-size")
        _at_least(self.workers, 0, "--workers", "0 or more")
        _at_least(self.wait_s, 0, "--wait", "0 or more seconds")
        _at_least(self.commit_rows, 1, "commit_rows")
        _at_least(self.checkpoint_s, 0, "checkpoint_s", "0 or more seconds")
        object.__setattr__(self, "excludes", tuple(self.excludes or ()))
        self.patterns  # noqa: B018 -- an empty --exclude is refused here, with its message

    @property
    def patterns(self) -> tuple[str, ...]:
        """The globs the run leaves out (``exclude_patterns``: the defaults unless turned off, then ``excludes``)."""
        return exclude_patterns(self.excludes, self.default_excludes)

    @classmethod
    def of(cls, **values) -> IndexOptions:
        """Options from keywords, the engine's among them (``engine="ray", actors=2``): ``build_index``'s
        keyword form."""
        engine = {name: values.pop(name) for name in ENGINE_FIELDS if name in values}
        if isinstance(engine.get("engine"), EngineOptions):
            return cls(**values, engine=engine["engine"])
        return cls(**values, engine=EngineOptions(**engine))

    @classmethod
    def from_args(cls, args) -> IndexOptions:
        """The ``index`` command line's options."""
        return cls(batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress,
                   wait_s=args.wait, excludes=tuple(args.exclude), default_excludes=not args.no_default_excludes,
                   ocr=getattr(args, "ocr", False), engine=EngineOptions.from_args(args),
                   video=VideoSampling(*(getattr(args, name) for name in ("video_every", "video_scene",
                                                                            "video_max_frames")))
                   if hasattr(args, "video_every") else VideoSampling())


@dataclass(frozen=True)
class CaptionOptions:
    """How ``caption_index`` runs.

    ``langs``: ``--lang`` (a comma list or a sequence; kept as a tuple). ``captioner`` and ``precision``
    (``auto``: measured on a sample of the library). ``commit_s``: the longest time between commits.
    ``stop_after`` stops after that many images (tests of resumption). ``generation``: extra ``generate``
    arguments (the bench fixes the token count). ``workers``: the local engine's decode processes.
    """

    langs: tuple[str, ...] = ("en", "zh")
    batch_size: int = 8
    commit_s: float = 20.0
    progress: bool = True
    wait_s: float = 0.0
    stop_after: int | None = None
    captioner: str = "blip"
    precision: str = "auto"
    workers: int | None = None
    generation: dict | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)

    def __post_init__(self):
        object.__setattr__(self, "langs", tuple(parse_langs(self.langs)))
        check_captioner(self.captioner)
        check_caption_precision(self.precision, allow_auto=True)
        _at_least(self.batch_size, 1, "--batch-size")
        _at_least(self.commit_s, 0, "commit_s", "0 or more seconds")
        _at_least(self.wait_s, 0, "--wait", "0 or more seconds")
        _at_least(self.workers, 0, "--workers", "0 or more")

    @classmethod
    def of(cls, **values) -> CaptionOptions:
        """Options from keywords, the engine's among them (``engine="ray", actors=2``)."""
        engine = {name: values.pop(name) for name in ENGINE_FIELDS if name in values}
        if isinstance(engine.get("engine"), EngineOptions):
            return cls(**values, engine=engine["engine"])
        return cls(**values, engine=EngineOptions(**engine))

    @classmethod
    def from_args(cls, args) -> CaptionOptions:
        """The ``caption --index`` command line's options."""
        return cls(langs=args.lang, batch_size=args.batch_size, progress=not args.no_progress, wait_s=args.wait,
                   captioner=args.captioner, precision=args.precision or "auto", engine=EngineOptions.from_args(args))

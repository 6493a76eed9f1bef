"""What one bench run measures, as one frozen object that checks its own values where it is made.

``BenchOptions.from_args`` builds it from ``bench``'s flags; Python callers build it directly. Each bad value is
one line naming the flag, the same wherever the options come from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ChapterError

CAPTIONER_CHOICES = ("blip", "vit-gpt2")
WEB_MIN_IMAGES = 1000  # the web part searches ~180 distinct captions: a smaller toy library repeats them


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in str(text).split(",") if s.strip())


def missing_rclip(python: str | None) -> str | None:
    """Why the comparison with rclip cannot run with ``python`` (with the line that makes it), or None."""
    if python and Path(python).exists():
        return None
    return (f"no interpreter with rclip at {python}: python -m venv /tmp/rclip-venv && "
            "/tmp/rclip-venv/bin/pip install rclip==3.3.0, then pass --rclip-python /tmp/rclip-venv/bin/python")


@dataclass(frozen=True)
class BenchOptions:
    images: int = 512                   # photo-sized JPEGs the indexer encodes per precision; 0 skips encoding
    batch_size: int = 64
    naive_images: int | None = None     # None: min(64, images)
    startup: bool = True
    engines: bool = True
    captioning: bool = True
    caption_images: int = 8
    caption_batch_sizes: tuple[int, ...] = (1, 4)
    caption_batch_size: int = 4
    caption_tokens: int = 20
    captioners: tuple[str, ...] = CAPTIONER_CHOICES
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    append_rows: int | None = None      # None: the largest size
    queries: int = 100
    out: Path | None = None             # the report, rewritten after every part so an interruption loses nothing
    soak_s: float = 0.0                 # the JSON API's soak (``bench.soak``) for this long; 0 skips it
    soak_images: int = 10_000           # the soak's toy index (issue 34's: 10,000 images)
    web_images: int = 0                 # the JSON API and the page on a toy index this size (``bench.web``); 0 skips
    rclip_python: str | None = None     # an interpreter with rclip 3.3.0: the first index beside it; None skips
    peer_images: int = 512              # photos the first-index comparison with rclip indexes
    skip: tuple[str, ...] = field(default=())  # parts left out by name (tests)

    def __post_init__(self):
        checks = [
            (self.images >= 0, "--images must be 0 (skip encoding) or more"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.naive_images is None or self.naive_images >= 1, "--naive-images must be at least 1"),
            (self.caption_images >= 1, "--caption-images must be at least 1"),
            (self.caption_batch_size >= 1, "--caption-batch-size must be at least 1"),
            (bool(self.caption_batch_sizes) and min(self.caption_batch_sizes) >= 1,
             "--caption-batch-sizes must list batch sizes of at least 1, e.g. 1,4"),
            (self.caption_tokens >= 1, "--caption-tokens must be at least 1"),
            (bool(self.captioners) and set(self.captioners) <= set(CAPTIONER_CHOICES),
             f"--captioners takes a comma list of {', '.join(CAPTIONER_CHOICES)}"),
            (all(s >= 1 for s in self.sizes), "--sizes must list library sizes of at least 1"),
            (self.append_rows is None or self.append_rows >= 0, "--append-rows must be 0 (skip) or more"),
            (self.queries >= 1, "--queries must be at least 1"),
            (self.soak_s >= 0, "--soak-s must be 0 (skip the soak) or more seconds, e.g. 600 for issue 34's"),
            (self.soak_images >= 1, "--soak-images must be at least 1"),
            (self.web_images == 0 or self.web_images >= WEB_MIN_IMAGES,
             f"--web-images must be 0 (skip) or at least {WEB_MIN_IMAGES} (distinct captions to search), e.g. 10000"),
            (self.peer_images >= 1, "--peer-images must be at least 1"),
            (not self.captioning or self.caption_images >= 2 * self.caption_batch_size,
             "--caption-images must be at least twice --caption-batch-size (one warm-up batch, one timed)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ChapterError(message)
        if self.out is not None and not Path(self.out).parent.is_dir():
            raise ChapterError(f"--out {self.out}: its folder does not exist; create it or name another file")

    @classmethod
    def from_args(cls, args) -> "BenchOptions":
        try:
            return cls(images=args.images, batch_size=args.batch_size, naive_images=args.naive_images,
                       startup=not args.no_startup, engines=not args.no_engines, captioning=not args.no_captioning,
                       caption_images=args.caption_images, caption_batch_sizes=_ints(args.caption_batch_sizes),
                       caption_batch_size=args.caption_batch_size, caption_tokens=args.caption_tokens,
                       captioners=tuple(c.strip() for c in args.captioners.split(",") if c.strip()),
                       sizes=_ints(args.sizes), append_rows=args.append_rows, queries=args.queries,
                       out=Path(args.out) if args.out else None,
                       soak_s=getattr(args, "soak_s", 0.0), soak_images=getattr(args, "soak_images", 10_000),
                       web_images=getattr(args, "web_images", 0), rclip_python=getattr(args, "rclip_python", None),
                       peer_images=getattr(args, "peer_images", 512))
        except ValueError as error:
            raise ChapterError(f"bench: a comma list holds a non-number ({error}); e.g. --sizes 10000,100000") from None

"""What an index run reports: counts, failures, notes, and where its time went (one JSON form, one text form)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IndexSummary:
    library: str
    index: str
    engine: str = "local"
    total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # rows of files gone from the library (or now excluded); a moved file's old path not counted
    moved: int = 0  # a new path with the bytes (sha1) of an indexed file that is gone: re-pointed, not encoded
    copied: int = 0  # a new path with the bytes of an indexed file still there: its rows copied, not encoded
    touched: int = 0  # a file whose time changed but not its bytes: its row's time updated, not encoded
    hashed: int = 0  # files hashed before decoding to recognise moves and copies (same size as an indexed file)
    excluded: int = 0  # folders and files left out by the exclude patterns in this walk
    excluded_removed: int = 0  # of ``removed``: rows of files the exclude patterns now leave out
    excludes: list[str] = field(default_factory=list)  # the patterns
    excluded_paths: list[str] = field(default_factory=list)  # the first EXCLUDED_LISTED of them (folders end in /)
    metadata_filled: int = 0  # unchanged rows from before the metadata columns, filled from a header read
    metadata_s: float = 0.0
    failed: list[dict] = field(default_factory=list)  # {"path", "reason", "retried"}: retried False = known
    skipped: list[dict] = field(default_factory=list)  # not an image type (captions.jsonl...), or not a regular file
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0  # images encoded / seconds from the first decode to the last row (Ray: incl. start)
    startup_s: float = 0.0  # ray: joining or starting Ray
    ray: dict = field(default_factory=dict)  # ray: the cluster and where decoding and encoding ran (_run_ray)
    ann: dict = field(default_factory=dict)  # role -> {"nprobe", "recall_at_10", "build_s"} when built
    ocr: dict = field(default_factory=dict)  # with --ocr: ocr_index.OcrSummary's JSON form

    def to_json(self) -> dict:
        # new/changed: issue 19's names for added/updated (kept for existing readers)
        return {**self.__dict__, "failed_count": len(self.failed), "new": self.added, "changed": self.updated}

    def text(self) -> str:
        lines = [f"index {self.index}: {self.total} images from {self.library}",
                 f"  added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                 f"removed {self.removed}, failed {len(self.failed)}, skipped {len(self.skipped)} (not images, or not regular files)  "
                 f"({self.seconds:.1f} s, {self.images_per_s:.1f} images/s encoded, engine {self.engine})"]
        if self.moved or self.copied or self.touched:
            lines.append(f"  moved {self.moved}, copied {self.copied}, touched {self.touched} (same bytes as an indexed "
                         f"file: vectors and captions kept, nothing encoded; {self.hashed} files hashed to tell)")
        if self.excluded or self.excluded_removed:
            shown = ", ".join(self.excluded_paths[:5]) + (", ..." if len(self.excluded_paths) > 5 else "")
            lines.append(f"  excluded {self.excluded} folders/files ({shown}) by {', '.join(self.excludes)}"
                         + (f"; {self.excluded_removed} indexed images in them removed from the index"
                            if self.excluded_removed else ""))
        if self.metadata_filled:
            lines.append(f"  capture date, camera and format filled for {self.metadata_filled} images indexed before "
                         f"they were stored ({self.metadata_s:.1f} s: headers read, nothing encoded)")
        lines += [f"  note: {note}" for note in self.notes]
        if self.ray:
            r = self.ray
            lines.append(f"  ray: {r['nodes']} nodes ({r['cpus']:g} CPUs, {r['gpus']:g} GPUs), started in "
                         f"{self.startup_s:.1f} s; {r['actors']} encoding actors ({r['cpus_per_actor']:g} CPUs each) "
                         f"on {r['actor_nodes']} nodes; decoding on {r['decode_nodes']} nodes")
        for role, ann in self.ann.items():
            lines.append(f"  {role}: ANN index (IVF-SQ8) built in {ann['build_s']} s, nprobe {ann['nprobe']}, "
                         f"recall@10 vs exact {ann['recall_at_10']:.3f}")
        if self.ocr:
            from ..ocr_index import OcrSummary

            lines.append(OcrSummary(**self.ocr).text())
        lines += [f"  SKIPPED {entry['path']}: {entry['reason']}" for entry in self.skipped
                  if not entry["reason"].startswith("not an image file type")]
        for failure in self.failed:
            again = "" if failure.get("retried", True) else "  (unchanged since it failed: not retried)"
            lines.append(f"  FAILED {failure['path']}: {failure['reason']}{again}")
        return "\n".join(lines)


"""What an index run reports: counts, failures, notes, and where its time went (one JSON form, one text form)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...exercises.i18n import t
from ..ocr.run import OcrSummary


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
    placed: int = 0  # GPS positions named (city, region, country) in this run, all in one lookup
    places_s: float = 0.0
    failed: list[dict] = field(default_factory=list)  # {"path", "reason", "retried"}: retried False = known
    skipped: list[dict] = field(default_factory=list)  # not an image type (captions.jsonl...), or not a regular file
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0  # images encoded / seconds from the first decode to the last row (Ray: incl. start)
    startup_s: float = 0.0  # ray: joining or starting Ray
    ray: dict = field(default_factory=dict)  # ray: the cluster and where decoding and encoding ran (_run_ray)
    ann: dict = field(default_factory=dict)  # role -> {"nprobe", "recall_at_10", "build_s"} when built
    precision: dict | None = None  # what build_index decided when it chose the precision (indexer.decide_precision)
    ocr: dict = field(default_factory=dict)  # with --ocr: ocr_index.OcrSummary's JSON form

    def to_json(self) -> dict:
        # new/changed: issue 19's names for added/updated (kept for existing readers); precision last, when decided
        data = {key: value for key, value in self.__dict__.items() if key != "precision"}
        return {**data, "failed_count": len(self.failed), "new": self.added, "changed": self.updated,
                **({"precision": self.precision} if self.precision is not None else {})}

    def text(self, lang: str | None = None) -> str:
        """The run in words, in ``lang`` (None: ``$CH09_LANG``, else English); paths, reasons and notes as they came."""
        def say(en: str, zh: str) -> str:
            return t(en, zh, lang)

        lines = [say(f"index {self.index}: {self.total} images from {self.library}",
                     f"索引 {self.index}：{self.total} 张图片，来自 {self.library}"),
                 say(f"  added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                     f"removed {self.removed}, failed {len(self.failed)}, skipped {len(self.skipped)} "
                     f"(not images, or not regular files)  "
                     f"({self.seconds:.1f} s, {self.images_per_s:.1f} images/s encoded, engine {self.engine})",
                     f"  新增 {self.added}，更新 {self.updated}，未变 {self.unchanged}，删除 {self.removed}，"
                     f"失败 {len(self.failed)}，跳过 {len(self.skipped)}（不是图片，或不是普通文件）  "
                     f"（{self.seconds:.1f} 秒，编码 {self.images_per_s:.1f} 张/秒，引擎 {self.engine}）")]
        if self.moved or self.copied or self.touched:
            lines.append(say(
                f"  moved {self.moved}, copied {self.copied}, touched {self.touched} (same bytes as an indexed "
                f"file: vectors and captions kept, nothing encoded; {self.hashed} files hashed to tell)",
                f"  移动 {self.moved}，复制 {self.copied}，仅时间改变 {self.touched}（与已索引文件字节相同："
                f"保留向量和描述，不重新编码；为此计算了 {self.hashed} 个文件的哈希）"))
        if self.excluded or self.excluded_removed:
            shown = ", ".join(self.excluded_paths[:5]) + (", ..." if len(self.excluded_paths) > 5 else "")
            patterns = ", ".join(self.excludes)
            lines.append(say(
                f"  excluded {self.excluded} folders/files ({shown}) by {patterns}"
                + (f"; {self.excluded_removed} indexed images in them removed from the index"
                   if self.excluded_removed else ""),
                f"  按 {patterns} 排除了 {self.excluded} 个文件夹/文件（{shown}）"
                + (f"；其中 {self.excluded_removed} 张已索引的图片已从索引中删除" if self.excluded_removed else "")))
        if self.metadata_filled:
            lines.append(say(
                f"  capture date, camera, format and GPS position filled for {self.metadata_filled} images indexed "
                f"before they were stored ({self.metadata_s:.1f} s: headers read, nothing encoded)",
                f"  为 {self.metadata_filled} 张在存储这些列之前索引的图片补上了拍摄日期、相机、格式和 GPS 位置"
                f"（{self.metadata_s:.1f} 秒：只读文件头，不重新编码）"))
        if self.placed:
            lines.append(say(f"  places named for {self.placed} GPS positions ({self.places_s:.1f} s, offline GeoNames)",
                             f"  为 {self.placed} 个 GPS 位置查到了地名（{self.places_s:.1f} 秒，离线 GeoNames 数据）"))
        lines += [say(f"  note: {note}", f"  说明：{note}") for note in self.notes]
        if self.ray:
            r = self.ray
            lines.append(say(
                f"  ray: {r['nodes']} nodes ({r['cpus']:g} CPUs, {r['gpus']:g} GPUs), started in "
                f"{self.startup_s:.1f} s; {r['actors']} encoding actors ({r['cpus_per_actor']:g} CPUs each) "
                f"on {r['actor_nodes']} nodes; decoding on {r['decode_nodes']} nodes",
                f"  ray：{r['nodes']} 个节点（{r['cpus']:g} 个 CPU，{r['gpus']:g} 个 GPU），启动用时 "
                f"{self.startup_s:.1f} 秒；{r['actors']} 个编码 actor（每个 {r['cpus_per_actor']:g} 个 CPU），"
                f"分布在 {r['actor_nodes']} 个节点上；解码在 {r['decode_nodes']} 个节点上"))
        for role, ann in self.ann.items():
            lines.append(say(
                f"  {role}: ANN index (IVF-SQ8) built in {ann['build_s']} s, nprobe {ann['nprobe']}, "
                f"recall@10 vs exact {ann['recall_at_10']:.3f}",
                f"  {role}：ANN 索引（IVF-SQ8）构建用时 {ann['build_s']} 秒，nprobe {ann['nprobe']}，"
                f"相对精确搜索的 recall@10 {ann['recall_at_10']:.3f}"))
        if self.ocr:
            lines.append(OcrSummary(**self.ocr).text())
        lines += [say(f"  SKIPPED {entry['path']}: {entry['reason']}", f"  已跳过 {entry['path']}：{entry['reason']}")
                  for entry in self.skipped if not entry["reason"].startswith("not an image file type")]
        for failure in self.failed:
            again = "" if failure.get("retried", True) else say("  (unchanged since it failed: not retried)",
                                                                  "  （失败后未改变：不重试）")
            lines.append(say(f"  FAILED {failure['path']}: {failure['reason']}{again}",
                             f"  失败 {failure['path']}：{failure['reason']}{again}"))
        if self.precision is not None:
            lines.append(say(f"  precision {self.precision['precision']}: {self.precision['reason']}",
                             f"  精度 {self.precision['precision']}：{self.precision['reason']}"))
        return "\n".join(lines)

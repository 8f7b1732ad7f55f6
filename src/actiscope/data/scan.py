"""Read every file once: is it usable, what is it, and what are its exact and perceptual hashes.

Both `inspect` and `split` need this (split keeps duplicate groups together), so it lives here.
Decoding runs in worker processes because a 6,000-image dataset is CPU-bound JPEG work.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from actiscope.data.images import ImageReadError, decode_image, is_image_path
from actiscope.data.video import DEFAULT_LIMITS, VideoLimits, is_video_path, read_clip
from actiscope.errors import MediaReadError

THUMB_SIDE = 16
MIN_CORRELATION = 0.9  # thumbnails of true near duplicates correlate far above this
HASH_BANDS = 5  # a 64-bit hash in 5 bands: two hashes within 4 bits share at least one band exactly


@dataclass(frozen=True)
class FileScan:
    path: str
    size_bytes: int = 0
    md5: str | None = None
    dhash: int | None = None  # 64-bit difference hash of the decoded image (a clip: its middle frame)
    thumb: bytes | None = None  # 16x16 greyscale thumbnail that confirms a hash match
    width: int | None = None
    height: int | None = None
    mode: str | None = None  # colour mode as stored, before conversion to RGB
    format: str | None = None  # image format, or a clip's codec
    error: str | None = None
    duration: float | None = None  # clips: seconds
    fps: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def scan_file(path: str | Path, limits: VideoLimits = DEFAULT_LIMITS) -> FileScan:
    """Hash and fully decode one file (a clip: within `limits`); never raises for a bad file."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileScan(path, error=f"cannot read file ({exc.strerror or exc})")
    md5 = hashlib.md5(data).hexdigest()
    if not data:
        return FileScan(path, 0, md5, error="empty file (0 bytes)")
    if is_video_path(Path(path)):
        return _scan_clip(path, len(data), md5, limits)
    if not is_image_path(Path(path)):
        return FileScan(path, len(data), md5)
    buffer = io.BytesIO(data)
    buffer.name = path
    try:
        decoded = decode_image(buffer)
    except ImageReadError as exc:
        return FileScan(path, len(data), md5, error=exc.reason)
    rgb = decoded.image
    return FileScan(
        path,
        len(data),
        md5,
        difference_hash(rgb),
        thumbnail(rgb),
        rgb.width,
        rgb.height,
        decoded.mode,
        decoded.format,
    )


def _scan_clip(path: str, size: int, md5: str, limits: VideoLimits) -> FileScan:
    """Decode a clip through the video layer; its middle frame stands in for it in duplicate search (a
    re-encoded copy of a clip, or clips cut from one recording, look alike there)."""
    try:
        clip = read_clip(path, 64, 3, limits=limits)
    except MediaReadError as exc:
        return FileScan(path, size, md5, error=exc.reason)
    info = clip.info
    middle = Image.fromarray(clip.pixels[1])
    return FileScan(
        path,
        size,
        md5,
        difference_hash(middle),
        thumbnail(middle),
        info.width,
        info.height,
        format=info.codec,
        duration=round(info.duration, 3),
        fps=round(info.fps, 3),
    )


def thumbnail(image: Image.Image) -> bytes:
    """The THUMB_SIDE x THUMB_SIDE greyscale pixels that confirm a hash match (see thumbnails_match)."""
    return image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR).tobytes()


def difference_hash(image: Image.Image) -> int:
    """64-bit dHash: is each pixel of a 9x8 greyscale thumbnail brighter than its right neighbour."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def scan_files(
    paths: Sequence[str | Path],
    workers: int | None = None,
    *,
    limits: VideoLimits = DEFAULT_LIMITS,
    progress: Callable[[int, int], object] | None = None,
) -> list[FileScan]:
    """scan_file over many paths, in parallel when it is worth starting processes; `progress(done, total)`
    after each file."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(paths) < 64:
        return _told(map(scan_file, paths, itertools.repeat(limits)), len(paths), progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunksize = max(8, len(paths) // (workers * 8))
        scans = pool.map(scan_file, paths, itertools.repeat(limits), chunksize=chunksize)
        return _told(scans, len(paths), progress)


def _told(
    scans: Iterable[FileScan], total: int, progress: Callable[[int, int], object] | None
) -> list[FileScan]:
    done = []
    for scan in scans:
        done.append(scan)
        if progress is not None:
            progress(len(done), total)
    return done


def duplicate_groups(scans: Sequence[FileScan], max_distance: int = 4) -> list[list[int]]:
    """Indices of files that are the same bytes or look the same, as groups of two or more.

    "Look the same" needs two things: dHash within `max_distance` bits, found through band buckets so
    the search stays near linear, and thumbnails that correlate. The hash alone is not enough: on
    flat studio backgrounds unrelated photos share most gradient signs.
    """
    by_md5: dict[str, list[int]] = defaultdict(list)
    for i, scan in enumerate(scans):
        if scan.ok and scan.md5:
            by_md5[scan.md5].append(i)
    together: list[Sequence[int]] = list(by_md5.values())
    if max_distance >= 0:
        together += [
            (a, b)
            for a, b in _near_candidates(scans, max_distance)
            # the same bytes are together already; the thumbnail test is for the rest
            if scans[a].md5 != scans[b].md5 and thumbnails_match(scans[a], scans[b])
        ]
    return [g for g in connected_groups(len(scans), together) if len(g) > 1]


def connected_groups(count: int, together: Iterable[Sequence[int]]) -> list[list[int]]:
    """Partition 0..count-1 so that the members of each of `together` (a pair, or a longer group) end
    up in one group, and groups that share a member merge: the connected components of that graph.
    Each group is in ascending order, the groups by their first index; an index nothing links stands
    alone (a group of one)."""
    links = np.array([(g[0], j) for g in together for j in g[1:]], dtype=np.intp).reshape(-1, 2)
    graph = coo_array((np.ones(len(links), dtype=np.int8), (links[:, 0], links[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels.tolist()):
        groups[label].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _near_candidates(scans: Sequence[FileScan], max_distance: int) -> set[tuple[int, int]]:
    """Pairs whose hashes differ in at most `max_distance` bits (pigeonhole over HASH_BANDS bands)."""
    by_hash: dict[int, list[int]] = defaultdict(list)
    for i, scan in enumerate(scans):
        if scan.ok and scan.dhash is not None:
            by_hash[scan.dhash].append(i)
    close: set[tuple[int, int]] = set()  # pairs of distinct hash values
    bounds = np.linspace(0, 64, HASH_BANDS + 1).astype(int)
    for lo, hi in itertools.pairwise(bounds):
        mask = (1 << int(hi - lo)) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for h in by_hash:
            buckets[(h >> int(lo)) & mask].append(h)
        for bucket in buckets.values():
            for pos, a in enumerate(bucket):
                close.update((a, b) for b in bucket[pos + 1 :] if (a ^ b).bit_count() <= max_distance)
    pairs = {(i, j) for members in by_hash.values() for n, i in enumerate(members) for j in members[n + 1 :]}
    pairs.update((i, j) for a, b in close for i in by_hash[a] for j in by_hash[b])
    return pairs


def thumbnails_match(a: FileScan, b: FileScan) -> bool:
    if a.thumb is None or b.thumb is None:
        return False
    x = np.frombuffer(a.thumb, dtype=np.uint8).astype(np.float64)
    y = np.frombuffer(b.thumb, dtype=np.uint8).astype(np.float64)
    if x.std() < 2 or y.std() < 2:  # flat images: correlation is undefined, compare brightness
        return bool(np.abs(x - y).mean() < 4)
    return float(np.corrcoef(x, y)[0, 1]) >= MIN_CORRELATION

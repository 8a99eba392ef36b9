"""Build the demo archive: plan, render previews in parallel, write the table last.

The demo archive is what the service and every test use by default, because real
Hubble previews cannot be downloaded everywhere. It is deterministic: the same seed
gives byte-identical ``observations.ecsv``, ``truth.csv`` and PNGs whatever the number
of worker processes. It is built in a temporary sibling directory and moved into place
only when complete, so an interrupted build never leaves a half-written archive.

A build killed outright (SIGKILL, a crash) cannot clean up: its sibling directory is
named after its process id (``.NAME.building-PID-xxxx``), and the next build removes
those whose process no longer runs. Its rendering workers die with it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from ...errors import ArchiveError
from ...processes import die_with_parent, process_alive
from ..archive import METADATA_FILE, OBSERVATIONS_FILE, Archive
from .kinds import KINDS
from .plan import Observation, plan_archive
from .render import Exposure, render_preview, write_png
from .table import observations_table, preview_name

__all__ = ["TRUTH_FILE", "build_demo_archive", "estimated_build_seconds",
           "remove_abandoned_builds"]

#: CPU time to render and write one 512-px preview, measured on this project's 2-core
#: machines (0.07 s to render, the rest PNG encoding); it scales with the pixel count.
_CPU_SECONDS_PER_512_PREVIEW = 0.09

#: Ground truth for evaluation only: ``obs_id,kind`` per observation.
TRUTH_FILE = "truth.csv"

_Job = tuple[Exposure, int, tuple[int, ...], str]

#: What a build leaves beside the archive while it runs: ``.NAME.building-PID-xxxx``
#: (being written) and ``.NAME.old-PID-xxxx`` (the archive it replaces).
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:building|old)-(?:(?P<pid>\d+)-)?[^/]+\Z")
#: Leftovers named before the owner's pid was recorded are removed after this long.
_UNOWNED_AGE_S = 86400


def build_demo_archive(root: str | os.PathLike, *, n_observations: int = 3000,
                       n_proposals: int = 400, seed: int = 0, preview_size: int = 512,
                       workers: int | None = None, progress: bool = True) -> Archive:
    """Generate the synthetic HST archive in ``root`` and return it opened.

    Parameters
    ----------
    root : path
        Archive directory; replaced if it already holds an archive, refused if it
        holds anything else.
    n_observations, n_proposals : int
        Archive size. With at least ``len(KINDS)`` proposals every scene kind is the
        main kind of at least one proposal.
    seed : int
        Everything (plan, captions, pixels) follows from it.
    preview_size : int
        Side of the square 8-bit previews, in pixels.
    workers : int, optional
        Rendering processes; default ``os.cpu_count()``. Results do not depend on it.
    progress : bool
        Show a progress bar while previews render.
    """
    if n_observations < 1:
        raise ArchiveError(f"a demo archive needs at least one observation, not {n_observations}")
    root = Path(root).expanduser()
    _check_replaceable(root)
    observations = plan_archive(n_observations, n_proposals, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-{os.getpid()}-",
                                    dir=root.parent))
    staging.chmod(0o777 & ~_umask())
    try:
        _render_all(staging, observations, preview_size, workers or os.cpu_count() or 1, progress)
        _write_truth(staging / TRUTH_FILE, observations)
        Archive.write(staging, observations_table(observations), name="HST demo archive",
                      source="vo_clip.archive.demo (synthetic; not real HST data)",
                      extra={"seed": seed, "n_observations": len(observations),
                             "n_proposals": len({o.proposal.proposal_id for o in observations}),
                             "preview_size": preview_size, "kinds": list(KINDS)})
        _swap_into_place(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Archive.open(root)


def estimated_build_seconds(n_observations: int = 3000, preview_size: int = 512,
                            workers: int | None = None) -> float:
    """How long rendering takes on idle cores: the first-use estimate, from CPU time.

    Busy cores stretch it (the demo's 3,000 previews took 6 min 40 s on 2 cores shared
    with four busy processes), which the progress bar's ETA then shows.
    """
    cores = max(1, min(workers or os.cpu_count() or 1, os.cpu_count() or 1))
    cost = _CPU_SECONDS_PER_512_PREVIEW * (preview_size / 512) ** 2
    return n_observations * cost / cores


def remove_abandoned_builds(root: str | os.PathLike) -> list[Path]:
    """Delete what killed builds of the archive ``root`` left beside it; the paths removed.

    A leftover is removed only when the process named in it no longer runs (one
    without a process id, from an older version, once it is a day old), so a build
    running at the same time keeps its directory.
    """
    root = Path(root).expanduser()
    removed = []
    try:
        siblings = list(root.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        found = _LEFTOVER.match(path.name)
        if not found or found["name"] != root.name or not path.is_dir():
            continue
        if found["pid"] is None:
            if time.time() - path.stat().st_mtime < _UNOWNED_AGE_S:
                continue
        elif int(found["pid"]) == os.getpid() or process_alive(int(found["pid"])):
            continue  # a build still running (in this process or another)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a directory that holds something other than an archive."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ArchiveError(f"{root} exists and is not a directory")
    is_archive = (root / OBSERVATIONS_FILE).exists() or (root / METADATA_FILE).exists()
    if any(root.iterdir()) and not is_archive:
        raise ArchiveError(f"refusing to replace {root}: it is not empty and holds no archive",
                           hint="choose an empty or new directory")


def _render_all(staging: Path, observations: list[Observation], size: int, workers: int,
                progress: bool) -> None:
    (staging / "previews").mkdir()
    jobs: list[_Job] = [(o.exposure, size, o.seed, str(staging / preview_name(o.obs_id)))
                        for o in observations]
    # smoothing=0: the ETA is the average rate since the start, which is steady (the
    # default follows the last few chunks, whose cost varies tenfold with the scene).
    bar = tqdm(total=len(jobs), desc="rendering previews", unit="preview", smoothing=0,
               delay=2, disable=not progress)
    with bar:
        if workers <= 1:
            for job in jobs:
                _render_job(job)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) as pool:
            for _ in pool.map(_render_job, jobs, chunksize=8):
                bar.update()


def _render_job(job: _Job) -> None:
    exposure, size, seed, path = job
    write_png(Path(path), render_preview(exposure, size, seed))


def _write_truth(path: Path, observations: list[Observation]) -> None:
    lines = ["obs_id,kind"] + [f"{o.obs_id},{o.kind}" for o in observations]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _umask() -> int:
    """The process umask (mkdtemp creates private directories; the archive should not be)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap_into_place(staging: Path, root: Path) -> None:
    """Replace ``root`` by the finished ``staging`` directory in two renames."""
    if not root.exists():
        os.replace(staging, root)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-{os.getpid()}-",
                                    dir=root.parent))
    os.replace(root, retired / root.name)
    os.replace(staging, root)
    shutil.rmtree(retired, ignore_errors=True)

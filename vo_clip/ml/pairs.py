"""Image–caption pairs of an archive, split by proposal, as PAPERCLIP trains on them.

Every observation of a proposal shares that proposal's caption: its summary
(objects and phenomena, then science use cases) or its abstract. Splitting by proposal
keeps every caption of the validation set unseen in training, as PAPERCLIP split by
abstract. No torch here: the split is plain numpy, reused by training and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError

__all__ = ["CAPTION_SOURCES", "Pairs", "archive_pairs", "caption_embeddings", "caption_variants",
           "split_by_proposal"]

CAPTION_SOURCES = ("summary", "abstract")


@dataclass(frozen=True)
class Pairs:
    """Row ``i`` pairs the preview ``paths[i]`` with ``captions[i]`` of ``proposals[i]``."""

    rows: np.ndarray
    obs_ids: list[str]
    paths: list
    captions: list[str]
    proposals: np.ndarray
    summaries: list[tuple[str, str]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, mask: np.ndarray) -> "Pairs":
        idx = np.flatnonzero(mask)
        return Pairs(self.rows[idx], [self.obs_ids[i] for i in idx],
                     [self.paths[i] for i in idx], [self.captions[i] for i in idx],
                     self.proposals[idx],
                     None if self.summaries is None else [self.summaries[i] for i in idx])


def archive_pairs(archive, captions: str = "summary") -> Pairs:
    """All (preview, caption) pairs of ``archive``.

    Raises
    ------
    ArchiveError
        If the archive lacks the columns the caption source needs.
    """
    table = archive.table
    needed = {"summary": ("summary_objects", "summary_use_cases"),
              "abstract": ("proposal_abstract",)}[captions]
    missing = [c for c in (*needed, "proposal_id") if c not in table.colnames]
    if missing:
        raise ArchiveError(f"archive {archive.name} lacks {', '.join(missing)}, needed to "
                           f"train on {captions} captions")
    sources = [_texts(table[name]) for name in needed]
    keep = np.array([all(values) for values in zip(*sources)], dtype=bool)
    if not keep.any():
        raise ArchiveError(f"archive {archive.name} has no {captions} captions to train on",
                           hint="run 'vo-clip summarize' first" if captions == "summary"
                           else None)
    summaries = None
    if captions == "summary":
        summaries = list(zip(*sources))
        texts = [summary_caption(o, u) for o, u in summaries]
    else:
        texts = list(sources[0])
    pairs = Pairs(np.arange(len(table)), archive.obs_ids,
                  [archive.preview_path(i) for i in range(len(table))], texts,
                  np.array([str(p) for p in table["proposal_id"]]), summaries)
    # Rows without a caption (a summary that failed, an empty abstract) cannot be paired.
    return pairs if keep.all() else pairs.subset(keep)


def _texts(column) -> list[str]:
    """The column's values as text; '' where masked (NULL)."""
    mask = np.ma.getmaskarray(column)
    return ["" if masked else str(value).strip() for value, masked in zip(column, mask)]


def caption_embeddings(model, captions) -> np.ndarray:
    """Each caption's unit text vector, one row per caption, each distinct text encoded once
    (the observations of a proposal share its caption)."""
    unique, caption_of = np.unique(list(captions), return_inverse=True)
    return model.encode_text(list(unique))[caption_of]


def summary_caption(objects: str, use_cases: str) -> str:
    """One sentence from a summary's two lists ('; '-separated in the archive)."""
    return f"{_items(objects)}. {_items(use_cases)}."


def caption_variants(objects: str, use_cases: str, rng: np.random.Generator, n: int) -> list[str]:
    """Other ways to say a summary: cheap text augmentation for a locked text tower.

    ``n`` shuffled, sub-sampled summaries, plus every item on its own — people search
    with a short phrase ("globular cluster"), not with a whole summary.
    """
    objs, uses = _split(objects), _split(use_cases)
    variants = []
    for _ in range(n):
        o = [objs[i] for i in rng.permutation(len(objs))[:rng.integers(1, len(objs) + 1)]]
        u = [uses[i] for i in rng.permutation(len(uses))[:rng.integers(1, len(uses) + 1)]]
        variants.append(f"{', '.join(o)}. {', '.join(u)}.")
    return variants + objs + uses


def split_by_proposal(proposals: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation rows: whole proposals, chosen by ``seed``."""
    unique = np.unique(proposals)
    n_val = int(round(val_fraction * len(unique)))
    val = set(np.random.default_rng(seed).permutation(unique)[:n_val].tolist())
    return np.array([p in val for p in proposals])


def _split(items: str) -> list[str]:
    return [s.strip() for s in str(items).split(";") if s.strip()] or [str(items)]


def _items(items: str) -> str:
    return ", ".join(_split(items))

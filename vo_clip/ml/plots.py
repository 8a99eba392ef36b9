"""Figures of evaluation reports (:func:`vo_clip.ml.evaluate.evaluate`) and of training
runs, ready for a paper.

Three PNGs, PAPERCLIP's evaluation figures, with every model of a comparison in each:

* ``retrieval_accuracy.png``: caption → preview retrieval accuracy against the retrieval
  fraction k %, with the shuffled-caption baseline and chance;
* ``similarity_distributions.png``: matched against shuffled caption–preview cosine
  similarities, one panel per model on a shared axis;
* ``top_k_retrieval.png``: the top-k previews of each query, models side by side, marked
  right or wrong where the archive knows each observation's kind.

Sizes follow journal columns (3.5 and 7 inches), text is 7–8 pt at 300 dpi, and colours
come from the Okabe–Ito palette, which colour-blind readers tell apart; right and wrong
are also told by a symbol, not by colour alone. Figures are built on
:class:`matplotlib.figure.Figure` without pyplot, so no GUI backend or global state is
touched; this module is imported only by ``vo-clip eval`` and ``vo-clip train`` (which
draws ``training_curve.png`` from the run's metrics log), so serving never loads
matplotlib.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath
from PIL import Image

__all__ = ["model_labels", "plot_retrieval_accuracy", "plot_similarity_distributions",
           "plot_top_k_retrieval", "plot_training_curve", "write_plots",
           "write_training_curve"]

#: Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green, reddish
#: purple, orange, sky blue), in the order models get them.
MODEL_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
SHUFFLED_COLOUR = "#6e6e6e"  # the baseline, the same for every model
RIGHT_COLOUR, WRONG_COLOUR = "#009E73", "#D55E00"
SINGLE_COLUMN, DOUBLE_COLUMN = 3.5, 7.0  # inches: a journal's column and page widths
DPI = 300

STYLE = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8,
    "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "xtick.major.size": 3, "ytick.major.size": 3, "lines.linewidth": 1.4,
    "axes.spines.top": False, "axes.spines.right": False,
    "grid.linewidth": 0.4, "grid.color": "#b0b0b0", "grid.alpha": 0.6,
    "legend.frameon": True, "legend.framealpha": 0.9, "legend.edgecolor": "none",
    "legend.handlelength": 2.2, "savefig.dpi": DPI, "savefig.facecolor": "white",
}


def write_plots(reports: dict[str, dict], archive, out_dir: str | Path) -> list[Path]:
    """Draw the evaluation figures of ``reports`` (model spec → report) into ``out_dir``.

    ``archive`` is the one evaluated: the top-k figure shows its previews. The top-k
    figure is left out when no report lists top-k retrievals.

    Returns
    -------
    list of Path
        The PNG files written, in the order above.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = model_labels(list(reports))
    named = {labels[spec]: report for spec, report in reports.items()}
    figures = {"retrieval_accuracy.png": plot_retrieval_accuracy(named),
               "similarity_distributions.png": plot_similarity_distributions(named)}
    if any("top_k_retrieval" in report for report in named.values()):
        figures["top_k_retrieval.png"] = plot_top_k_retrieval(named, archive)
    written = []
    for name, figure in figures.items():
        with matplotlib.rc_context(STYLE):
            figure.savefig(out_dir / name, dpi=DPI)
        written.append(out_dir / name)
    return written


def model_labels(specs: list[str]) -> dict[str, str]:
    """Short, distinct names for model specs: a checkpoint's file stem, a hub repo's name.

    Falls back to the whole spec where two short names would be the same.
    """
    short = {spec: _short_label(spec) for spec in specs}
    counts = {label: list(short.values()).count(label) for label in short.values()}
    return {spec: label if counts[label] == 1 else _ellipsized(spec, 40)
            for spec, label in short.items()}


def _short_label(spec: str) -> str:
    if spec.startswith("hf-hub:"):
        spec = spec.rsplit("/", 1)[-1]
    elif spec.endswith((".safetensors", ".pt", ".bin")) or "/" in spec or "\\" in spec:
        spec = Path(spec).stem if Path(spec).suffix else Path(spec).name
    return _ellipsized(spec, 28)


def _ellipsized(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return f"{text[:half]}…{text[-(width - 1 - half):]}"


# -- retrieval accuracy against k % -----------------------------------------------------
def plot_retrieval_accuracy(reports: dict[str, dict]) -> Figure:
    """Accuracy against retrieval fraction: solid per model, dashed shuffled, dotted chance.

    Every curve starts at the origin (the top 0 % holds nothing). The legend sits below
    the axes: inside, it would cover the chance diagonal that the shuffled curves follow.
    """
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(SINGLE_COLUMN, 3.3 + 0.14 * (len(reports) // 2)),
                        layout="constrained")
        axes = figure.add_subplot()
        first = next(iter(reports.values()))["retrieval_curve"]
        axes.plot(*_from_origin(first["k_percent"], first["chance"]), ":", color="0.3",
                  lw=1.1, zorder=1)
        handles = []
        for colour, (label, report) in zip(_cycle(MODEL_COLOURS, len(reports)),
                                           reports.items()):
            curve = report["retrieval_curve"]
            axes.plot(*_from_origin(curve["k_percent"], curve["shuffled"]), "--",
                      color=colour, lw=1.0, alpha=0.9, zorder=2)
            handles += axes.plot(*_from_origin(curve["k_percent"], curve["matched"]), "-",
                                 color=colour, zorder=3, label=label)
        handles += [Line2D([], [], ls="--", lw=1.0, color="0.3", label="shuffled captions"),
                    Line2D([], [], ls=":", lw=1.1, color="0.3", label="chance")]
        axes.set(xlim=(0, 100), ylim=(0, 101), xticks=range(0, 101, 20),
                 yticks=range(0, 101, 20), xlabel="retrieval fraction k (%)",
                 ylabel="retrieval accuracy (%)")
        axes.grid(True)
        axes.set_title(f"Caption → preview retrieval, {_pairs_phrase(reports)}")
        figure.legend(handles=handles, loc="outside lower center", ncols=2,
                      columnspacing=1.2, handlelength=2.0, frameon=False)
    return figure


def _from_origin(k_percent, fractions) -> tuple[np.ndarray, np.ndarray]:
    """A curve in percent, with the point (0, 0) in front."""
    return (np.concatenate([[0.0], np.asarray(k_percent, dtype=float)]),
            100 * np.concatenate([[0.0], np.asarray(fractions, dtype=float)]))


def _pairs_phrase(reports: dict[str, dict]) -> str:
    sizes = sorted({report["pairs"] for report in reports.values()})
    pairs = " / ".join(f"{n:,}" for n in sizes)
    split = next(iter(reports.values())).get("split")
    return f"{pairs} {'held-out ' if split == 'validation' else ''}pairs"


# -- similarity distributions ----------------------------------------------------------
def plot_similarity_distributions(reports: dict[str, dict]) -> Figure:
    """Histograms of matched and shuffled cosine similarity, one panel per model.

    Matched pairs take the model's colour (as in the retrieval figure), shuffled ones
    grey: the baseline every model shares. The panels share the x axis so that models
    compare at a glance; the means go in the panel titles, where no histogram hides them.
    """
    with matplotlib.rc_context(STYLE):
        columns = min(len(reports), 3)
        rows = -(-len(reports) // columns)
        width = SINGLE_COLUMN if columns == 1 else DOUBLE_COLUMN
        figure = Figure(figsize=(width, 0.55 + 2.3 * rows), layout="constrained")
        grid = figure.subplots(rows, columns, sharex=True, squeeze=False)
        edges, merge = _shared_bins(reports)
        colours = _cycle(MODEL_COLOURS, len(reports))
        for axes, colour, (label, report) in zip(grid.flat, colours, reports.items()):
            _similarity_panel(axes, report["similarity"], edges, merge, colour)
            means = {which: _signed(report["similarity"][which]["mean"])
                     for which in ("matched", "shuffled")}
            axes.set_title(f"{label}\nmean: matched {means['matched']}, "
                           f"shuffled {means['shuffled']}", linespacing=1.5)
        for axes in grid.flat[len(reports):]:
            axes.set_visible(False)
        for axes in grid[-1]:
            axes.set_xlabel("cosine similarity of caption and preview")
        for axes in grid[:, 0]:
            axes.set_ylabel(f"fraction of pairs (bins of {edges[1] - edges[0]:.2f})")
        matched = tuple(_patch(colour) for colour in colours)
        figure.legend([matched, _patch(SHUFFLED_COLOUR),
                       Line2D([], [], ls="--", lw=0.9, color="0.3")],
                      ["matched pairs", "shuffled captions", "mean"],
                      handler_map={tuple: HandlerTuple(ndivide=None, pad=0)},
                      loc="outside upper center", ncols=3, frameon=False)
    return figure


def _patch(colour: str) -> Patch:
    return Patch(facecolor=to_rgba(colour, 0.3), edgecolor=colour, lw=1.1)


def _signed(value: float) -> str:
    """``value`` to two decimals with a true minus sign (U+2212), as typeset text has."""
    return f"{value:.2f}".replace("-", "\u2212")


def _shared_bins(reports: dict[str, dict]) -> tuple[np.ndarray, int]:
    """Bin edges spanning every model's similarities, merged so each panel reads smoothly.

    The report's 0.02-wide bins are merged (by 1, 2, 4, 5 or 10) until the occupied
    span holds at most about twice the square root of the number of pairs.
    """
    first = next(iter(reports.values()))["similarity"]
    edges = np.asarray(first["bins"])
    counts = np.array([report["similarity"][which]["histogram"]
                       for report in reports.values() for which in ("matched", "shuffled")])
    occupied = np.flatnonzero(counts.sum(axis=0))
    pairs = min(report["pairs"] for report in reports.values())
    span = occupied[-1] - occupied[0] + 1
    merge = next((m for m in (1, 2, 4, 5, 10) if span / m <= 2 * np.sqrt(pairs)), 10)
    low = max(0, (occupied[0] // merge - 1) * merge)
    high = min(len(edges) - 1, (occupied[-1] // merge + 2) * merge)
    return edges[low:high + 1:merge], merge


def _similarity_panel(axes, similarity: dict, edges: np.ndarray, merge: int,
                      colour: str) -> None:
    """Filled step histograms, shuffled under matched, with dashed lines at the means."""
    all_edges = np.asarray(similarity["bins"])
    start = int(np.argmin(np.abs(all_edges - edges[0])))
    for which, colour in (("shuffled", SHUFFLED_COLOUR), ("matched", colour)):
        summary = similarity[which]
        counts = np.asarray(summary["histogram"], dtype=float)
        counts = counts[start:start + merge * (len(edges) - 1)].reshape(-1, merge).sum(axis=1)
        fractions = counts / max(1.0, float(np.sum(summary["histogram"])))
        axes.stairs(fractions, edges, fill=True, color=colour, alpha=0.3, lw=0)
        axes.stairs(fractions, edges, color=colour, lw=1.1)
        axes.axvline(summary["mean"], color=colour, ls="--", lw=0.9)
    axes.set_xlim(edges[0], edges[-1])
    axes.set_ylim(0, None)
    axes.grid(True, axis="y")


# -- top-k image retrieval -------------------------------------------------------------
def plot_top_k_retrieval(reports: dict[str, dict], archive, *,
                         thumbnail_px: int = 192) -> Figure:
    """Rows of query → top-k preview thumbnails, one column block per model.

    Where the hits carry ``answers`` (the archive's ground truth), each thumbnail gets a
    frame and a tick or cross: bluish green ✓ for a kind that answers the query,
    vermillion ✗ for one that does not. The grid is laid out by hand, in inches, so that
    every thumbnail has the same size and the blocks the same spacing.
    """
    listed = {label: report["top_k_retrieval"] for label, report in reports.items()
              if "top_k_retrieval" in report}
    queries = [entry["query"] for entry in next(iter(listed.values()))["queries"]]
    k = max(len(entry["hits"]) for top in listed.values() for entry in top["queries"])
    judged = any("answers" in hit for top in listed.values() for entry in top["queries"]
                 for hit in entry["hits"])
    labels = [textwrap.fill(query, 20) for query in queries]
    grid = _ThumbnailGrid.fit(labels, k, len(listed), footer=0.26 if judged else 0.06)
    previews = _preview_lookup(archive)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=grid.size)
        inches = figure.dpi_scale_trans
        for block, (model, top) in enumerate(listed.items()):
            left = grid.block_left(block)
            figure.text(left + grid.block_width / 2, grid.height - 0.06, model, ha="center",
                        va="top", fontsize=8, fontweight="bold", transform=inches)
            by_query = {entry["query"]: entry["hits"] for entry in top["queries"]}
            for rank in range(k):
                figure.text(grid.thumb_left(block, rank) + grid.thumb / 2,
                            grid.thumb_bottom(0) + grid.thumb + 0.04, f"{rank + 1}",
                            ha="center", va="bottom", fontsize=7, transform=inches)
            for row, query in enumerate(queries):
                hits = by_query.get(query, [])
                for rank in range(k):
                    axes = figure.add_axes(grid.thumb_box(block, rank, row))
                    _thumbnail(axes, hits[rank] if rank < len(hits) else None, previews,
                               thumbnail_px)
        for row, label in enumerate(labels):
            figure.text(grid.label_width - 0.08, grid.thumb_bottom(row) + grid.thumb / 2,
                        label, ha="right", va="center", fontsize=LABEL_PT, transform=inches)
        if judged:
            figure.text(grid.width / 2, 0.08, "✓ / ✗: the preview's scene kind does / does "
                        "not answer the query (the archive's truth.csv)", ha="center",
                        va="bottom", fontsize=7, color="0.25", transform=inches)
    return figure


LABEL_PT = 7.5  # query labels of the top-k figure


@dataclass(frozen=True)
class _ThumbnailGrid:
    """Geometry of the top-k figure, in inches from the bottom left."""

    label_width: float
    thumb: float
    k: int
    blocks: int
    rows: int
    footer: float
    space: float = 0.07  # between thumbnails (frames are drawn half outside)
    gap: float = 0.22    # between model blocks
    header: float = 0.44  # model names and ranks

    @classmethod
    def fit(cls, labels: list[str], k: int, blocks: int, footer: float) -> "_ThumbnailGrid":
        """Thumbnails as large as a page width allows, within 0.45–0.8 inch."""
        label_width = 0.24 + max(_text_width(line, LABEL_PT) for label in labels
                                 for line in label.splitlines())
        room = DOUBLE_COLUMN - label_width - 0.05 - cls.gap * (blocks - 1)
        thumb = float(np.clip(room / (k * blocks) - cls.space, 0.45, 0.8))
        return cls(label_width, thumb, k, blocks, len(labels), footer)

    @property
    def block_width(self) -> float:
        return self.k * self.thumb + (self.k - 1) * self.space

    @property
    def width(self) -> float:
        return self.label_width + self.blocks * self.block_width + \
            (self.blocks - 1) * self.gap + 0.05

    @property
    def height(self) -> float:
        return self.header + self.rows * self.thumb + (self.rows - 1) * self.space + \
            self.footer

    @property
    def size(self) -> tuple[float, float]:
        return self.width, self.height

    def block_left(self, block: int) -> float:
        return self.label_width + block * (self.block_width + self.gap)

    def thumb_left(self, block: int, rank: int) -> float:
        return self.block_left(block) + rank * (self.thumb + self.space)

    def thumb_bottom(self, row: int) -> float:
        return self.height - self.header - (row + 1) * self.thumb - row * self.space

    def thumb_box(self, block: int, rank: int, row: int) -> list[float]:
        """``[left, bottom, width, height]`` as fractions of the figure, for add_axes."""
        return [self.thumb_left(block, rank) / self.width, self.thumb_bottom(row) / self.height,
                self.thumb / self.width, self.thumb / self.height]


def _text_width(text: str, size: float) -> float:
    """Width in inches of ``text`` set in DejaVu Sans at ``size`` points."""
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(family="DejaVu Sans", size=size), ismath=False)
    return width / 72


def _preview_lookup(archive):
    rows = {obs_id: i for i, obs_id in enumerate(archive.obs_ids)}
    return lambda obs_id: archive.preview_path(rows[obs_id]) if obs_id in rows else None


def _thumbnail(axes, hit: dict | None, previews, size: int) -> None:
    """One preview, framed and ticked by whether it answers its query (when known)."""
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.4)
        spine.set_color("0.6")
    if hit is None:
        axes.set_facecolor("0.95")
        return
    path = previews(hit["obs_id"])
    pixels = _thumbnail_pixels(path, size) if path is not None else None
    if pixels is None:
        axes.set_facecolor("0.95")
        axes.text(0.5, 0.5, "no preview", ha="center", va="center", fontsize=5,
                  transform=axes.transAxes, color="0.4")
    else:
        axes.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255,
                    interpolation="antialiased")
    if "answers" in hit:
        colour = RIGHT_COLOUR if hit["answers"] else WRONG_COLOUR
        for spine in axes.spines.values():
            spine.set_linewidth(1.8)
            spine.set_color(colour)
        axes.text(0.95, 0.05, "✓" if hit["answers"] else "✗", transform=axes.transAxes,
                  ha="right", va="bottom", fontsize=6, fontweight="bold", color="white",
                  bbox={"boxstyle": "circle,pad=0.12", "fc": colour, "ec": "none"})


def _thumbnail_pixels(path: Path, size: int) -> np.ndarray | None:
    """The preview as 8-bit grey or RGB pixels, at most ``size`` pixels a side."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if image.mode in ("L", "I", "I;16", "F", "1") else "RGB")
            image.thumbnail((size, size), Image.LANCZOS)
            return np.asarray(image)
    except OSError:
        return None


def _cycle(colours, n: int) -> list[str]:
    return [colours[i % len(colours)] for i in range(n)]


# -- a training run ----------------------------------------------------------------------
def plot_training_curve(records: list[dict], *, best_step: int | None = None) -> Figure:
    """Loss and held-out retrieval against the optimiser step, from a run's metrics log.

    ``records`` are the lines of ``metrics.jsonl`` (see :mod:`vo_clip.ml.training_run`):
    training windows carry ``train_loss``, validations a ``validation`` record. The
    best step, whose weights the checkpoint holds, is marked on both panels.
    """
    windows = [r for r in records if "train_loss" in r and "validation" not in r]
    checks = [r["validation"] for r in records if "validation" in r]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(DOUBLE_COLUMN, 2.6), layout="constrained")
        loss, retrieval = figure.subplots(1, 2)
        loss.plot([r["step"] for r in windows], [r["train_loss"] for r in windows],
                  color=MODEL_COLOURS[0], lw=0.9, alpha=0.8, label="training (10-step mean)")
        loss.plot([c["step"] for c in checks], [c["val_loss"] for c in checks], "o-",
                  color=MODEL_COLOURS[1], ms=3, label="validation")
        loss.set(xlabel="step", ylabel="contrastive loss")
        for k, colour in zip((1, 5, 10), MODEL_COLOURS[2:5]):
            retrieval.plot([c["step"] for c in checks], [100 * c[f"val_top{k}"] for c in checks],
                           "o-", color=colour, ms=3, label=f"top {k} %")
            retrieval.axhline(k, color=colour, ls=":", lw=0.8)  # chance for top k %
        retrieval.set(xlabel="step", ylabel="held-out retrieval accuracy (%)", ylim=(0, None))
        marks = [Line2D([], [], color=SHUFFLED_COLOUR, ls=":", lw=0.8, label="chance")]
        for axes in (loss, retrieval):
            if best_step is not None:
                axes.axvline(best_step, color=SHUFFLED_COLOUR, ls="--", lw=0.8)
            axes.grid(True, axis="y")
        if best_step is not None:
            marks.append(Line2D([], [], color=SHUFFLED_COLOUR, ls="--", lw=0.8,
                                label="best step (saved)"))
        loss.legend(loc="upper right")
        retrieval.legend(handles=retrieval.get_legend_handles_labels()[0] + marks,
                         loc="upper left")
    return figure


def write_training_curve(records: list[dict], path: str | Path, *,
                         best_step: int | None = None) -> Path:
    """Draw :func:`plot_training_curve` into ``path`` (a PNG)."""
    path = Path(path)
    with matplotlib.rc_context(STYLE):
        plot_training_curve(records, best_step=best_step).savefig(path, dpi=DPI)
    return path

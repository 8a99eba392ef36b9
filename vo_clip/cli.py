"""The ``vo-clip`` command line: thin wrappers over the library, one subcommand each.

Errors the user can fix (:class:`~vo_clip.errors.VoClipError`) are printed as one line,
with a hint on a second, and exit with status 1; usage errors exit with 2 (click's
convention). Tracebacks are for bugs only.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from . import __version__
from .config import Config
from .errors import VoClipError

__all__ = ["main"]

DEFAULT_COLUMNS = ["obs_id", "target_name", "instrument_name", "filters", "proposal_id",
                   "s_ra", "s_dec"]


class _Group(click.Group):
    """Turns library errors into a one-line message instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VoClipError as exc:
            click.echo(f"vo-clip: error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"vo-clip: hint: {exc.hint}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vo-clip")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML settings file (also $VO_CLIP_CONFIG).")
@click.option("--home", type=click.Path(file_okay=False),
              help="Where built archives and indexes live (default ~/.cache/vo_clip; "
                   "also $VO_CLIP_HOME).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the model runs (default: auto).")
@click.pass_context
def cli(ctx, config_file, home, device):
    """Search Hubble observations in plain language.

    \b
    Out of the box (the demo archive and model are built on first use):
      vo-clip query "planetary nebula with a bright central star"
      vo-clip query --like OBS_ID --top 5            # more like this observation
      vo-clip info                                   # what is in use, and where
      vo-clip serve                                  # the HTTP service
    Your own archive:
      vo-clip index --archive ARCHIVE --model MODEL   # embed every preview once
      vo-clip train / vo-clip eval                    # fine-tune and measure

    Settings come from defaults, --config FILE, VO_CLIP_* variables and flags, in
    that order. Run 'vo-clip COMMAND --help' for each command.
    """
    ctx.obj = Config.load(file=config_file, home=home, device=device)


@cli.command()
@click.option("--archive", type=click.Path(file_okay=False),
              help="Archive directory (default: the demo archive, generated on first use).")
@click.option("--model", help="Model spec: demo (default), a checkpoint file, a model "
                              "directory, hf-hub:ORG/REPO or ARCH:TAG (e.g. ViT-B-16:openai).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Index directory (default: HOME/indexes/<archive name>).")
@click.option("--rebuild", is_flag=True,
              help="Re-embed everything, replacing an index made with another model.")
@click.option("--batch-size", type=click.IntRange(1),
              help="Previews per forward pass (default: 256 on a GPU, 32 on the CPU, where "
                   "32 keeps vectors identical to earlier indexes).")
@click.option("--workers", type=click.IntRange(0),
              help="Threads decoding and resizing previews ahead of the model (default: one "
                   "per CPU core, at most 8; 0 decodes in the main thread).")
@click.option("--ann", type=click.Choice(["auto", "none", "ivf-pq", "hnsw"]),
              help="Vector index: none (exact scan), ivf-pq (faiss IVF-PQ, approximate), "
                   "hnsw (IVF-PQ with an HNSW coarse quantiser, for 10^7+ rows) or auto "
                   "(ivf-pq from 300,000 previews when faiss is installed). Default: what "
                   "the existing index uses, else auto.")
@click.option("--ann-nlist", type=click.IntRange(1),
              help="ANN: inverted lists (default about 2*sqrt(previews)).")
@click.option("--ann-nprobe", type=click.IntRange(1),
              help="ANN: lists scanned per query (default nlist/64, at least 16).")
@click.option("--ann-pq-m", type=click.IntRange(1),
              help="ANN: bytes per vector code, dividing the embedding size (default dim/8).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="Embed in this process, or on Ray (an actor pool of model replicas).")
@click.option("--ray-address", metavar="ADDR",
              help="Ray cluster to embed on (e.g. ray://HEAD:10001 or auto; default: a "
                   "local Ray).")
@click.option("--ray-actors", type=click.IntRange(1),
              help="Model replicas on Ray (default: one per GPU, else one per CPU).")
@click.pass_obj
def index(config: Config, archive, model, out, rebuild, batch_size, workers, ann, ann_nlist,
          ann_nprobe, ann_pq_m, engine, ray_address, ray_actors):
    """Embed every preview of an archive into an index directory.

    Re-running after the archive changed embeds only new or changed previews; an
    index built with another model is refused unless --rebuild is given. Previews are
    decoded in parallel and embedded in batches, on the GPU when there is one (see
    --device), or on a Ray cluster with --engine ray. --ann builds an approximate
    (faiss) index for large archives; adding previews to it later does not retrain it.
    """
    from .ml.model import load_model
    from .search.index import build_index
    from .search.vectors import AnnSettings
    from .workspace import ensure_demo_archive, model_spec

    config = _with(config, archive=archive, model=model, index=out)
    the_archive = ensure_demo_archive(config, notify=_notify)
    the_model = load_model(model_spec(config), device=config.device)
    tuned = ann_nlist or ann_nprobe or ann_pq_m
    settings = AnnSettings(ann, nlist=ann_nlist, nprobe=ann_nprobe,
                           pq_m=ann_pq_m) if ann or tuned else None
    built = build_index(the_archive, the_model, config.index_dir, rebuild=rebuild,
                        batch_size=batch_size, workers=workers, ann=settings,
                        engine=engine, ray_address=ray_address, ray_actors=ray_actors)
    vectors = built.index.vectors.describe()
    ann_note = ("" if vectors["kind"] == "none" else
                f"; {vectors['kind']} ANN, nlist {vectors['nlist']}, nprobe {vectors['nprobe']}")
    calibration = built.index.calibration
    match_note = ("" if calibration is None else
                  f"; match probability fitted on {calibration.queries} training captions")
    click.echo(f"indexed {len(built.index)} observations of {the_archive.name} with "
               f"{the_model.card.name} into {built.index.root} "
               f"({built.embedded} embedded, {built.reused} reused){ann_note}{match_note}")


@cli.command()
@click.argument("text", required=False)
@click.option("--image", type=click.Path(), help="Search by this image file (PNG, JPEG...).")
@click.option("--like", "like", metavar="OBS_ID", help="Search by this observation's preview.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1),
              help="Number of results.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "votable"]),
              default="table", show_default=True)
@click.option("--columns", help="Comma-separated catalog columns to show, or 'all'.")
@click.option("--instrument", help="Only this instrument (prefix, e.g. ACS or WFC3/UVIS).")
@click.option("--cone", nargs=3, type=float, metavar="RA DEC RADIUS",
              help="Only observations centred within RADIUS degrees of RA, DEC.")
@click.option("--where", help="Only rows matching this SQL condition on catalog columns, "
                              "e.g. \"proposal_cycle >= 20\".")
@click.option("--index", "index_dir", type=click.Path(file_okay=False), help="Index directory.")
@click.option("--model", help="Model spec (default: the one the index was built with).")
@click.pass_obj
def query(config: Config, text, image, like, top, fmt, columns, instrument, cone, where,
          index_dir, model):
    """Rank observations by similarity to TEXT, an --image, or a --like observation.

    \b
    Examples:
      vo-clip query "barred spiral galaxy with a star-forming ring"
      vo-clip query "globular cluster" --instrument ACS --top 20 --format csv
      vo-clip query --image my_galaxy.png
      vo-clip query --like hst_12345_01_acs_wfc_f814w_jb1n01 --cone 150.1 2.2 1.0
    """
    from .search.catalog import SearchFilter
    from .search.engine import Query
    from .workspace import open_engine

    config = _with(config, index=index_dir, model=model)
    the_query = Query(text=text, image=image, like=like)
    engine = open_engine(config, with_model=like is None, text_only=image is None,
                         notify=_notify)
    search_filter = SearchFilter(where=where, instrument=instrument,
                                 cone=tuple(cone) if cone else None)
    hits = engine.search(the_query, top=top, search_filter=search_filter)
    table = engine.table(hits, _columns(columns, engine.index.catalog.columns))
    _emit(table, fmt, the_query)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False),
              help="Archive directory (default: HOME/demo-archive, the embedded default).")
@click.option("--observations", default=3000, show_default=True, type=click.IntRange(1))
@click.option("--proposals", default=400, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--preview-size", default=512, show_default=True, type=click.IntRange(32, 2048))
@click.option("--contact-sheet", type=click.Path(dir_okay=False),
              help="Also write a PNG with one preview of each scene kind.")
@click.option("--retrain-model", is_flag=True,
              help="Also retrain the demo model on this archive (seeded; 23-32 min on 2 cores) "
                   "and write it to --model-out.")
@click.option("--model-out", type=click.Path(dir_okay=False),
              help="Where --retrain-model writes (default: the checkpoint shipped in the package).")
@click.pass_obj
def demo(config: Config, out, observations, proposals, seed, preview_size, contact_sheet,
         retrain_model, model_out):
    """Generate the synthetic HST demo archive (and optionally retrain the demo model).

    The archive is deterministic: the same options give byte-identical files. Other
    commands generate the default one on first use; run this to choose its size, to
    rebuild it, or to look at it (--contact-sheet).
    """
    from .archive.demo import build_demo_archive, write_contact_sheet

    root = Path(out).expanduser() if out else config.archive_dir
    archive = build_demo_archive(root, n_observations=observations, n_proposals=proposals,
                                 seed=seed, preview_size=preview_size)
    click.echo(f"demo archive: {len(archive)} observations in {archive.root}")
    if contact_sheet:
        write_contact_sheet(archive.root, contact_sheet)
        click.echo(f"contact sheet: {contact_sheet}")
    if retrain_model:
        from .ml.demo_model import DEMO_CHECKPOINT, retrain_demo_model

        card = retrain_demo_model(archive, model_out or DEMO_CHECKPOINT, seed=seed)
        click.echo(f"demo model: {model_out or DEMO_CHECKPOINT}")
        click.echo(json.dumps(_headline_metrics(card.metrics), indent=2))


@cli.command()
@click.option("--archive", type=click.Path(file_okay=False),
              help="Archive to train on (default: the demo archive).")
@click.option("--recipe", type=click.Choice(["paperclip", "demo"]), default="paperclip",
              show_default=True,
              help="Defaults for every setting below: the paper's fine-tuning of ViT-B-16 "
                   "(lr 1e-5, batch 32, 2,000 warm-up steps), or the demo model's LiT recipe.")
@click.option("--model", "base",
              help="Model spec to start from (default: the recipe's, ViT-B-16:openai or "
                   "demo:untrained).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write (.safetensors), with the best weights by validation.")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Resumable state and metrics.jsonl (default: OUT with the suffix .run).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in the run directory (same options).")
@click.option("--restart", is_flag=True, help="Discard an earlier run in the run directory.")
@click.option("--epochs", type=click.IntRange(1))
@click.option("--max-steps", type=click.IntRange(0),
              help="Stop after this many optimiser steps instead (0: use --epochs).")
@click.option("--batch-size", type=click.IntRange(2),
              help="Contrastive batch: the pairs each pair is contrasted with.")
@click.option("--accumulation", type=click.IntRange(1),
              help="Compute each batch in this many parts (less memory, same gradients).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--weight-decay", type=click.FloatRange(min=0))
@click.option("--warmup-steps", type=click.IntRange(0))
@click.option("--loss", type=click.Choice(["softmax", "sigmoid"]),
              help="softmax: CLIP's InfoNCE; sigmoid: SigLIP's pairwise loss.")
@click.option("--alignment", type=click.FloatRange(min=0),
              help="Weight of a second term beside the contrastive loss: the mean cosine "
                   "distance of each preview to its own caption (0: contrastive only).")
@click.option("--bank-negatives/--batch-negatives", default=None,
              help="With --lock-text: contrast each preview also with a caption of every "
                   "training proposal outside its batch, not only the batch's.")
@click.option("--captions", type=click.Choice(["summary", "abstract"]),
              help="Train on LLM summaries or raw abstracts (word-subsampled to the context).")
@click.option("--caption-variants", type=click.IntRange(0),
              help="Re-phrasings drawn per summary (text augmentation).")
@click.option("--val-fraction", type=click.FloatRange(0.01, 0.9),
              help="Share of proposals held out for validation.")
@click.option("--freeze", multiple=True, type=click.Choice(["image", "text"]),
              help="Keep this tower as the base model has it (repeatable).")
@click.option("--head-only", is_flag=True, default=None,
              help="Train only the projection heads and the temperature.")
@click.option("--lock-text/--unlock-text", default=None,
              help="LiT: freeze the text trunk, train its projection.")
@click.option("--rotations/--no-rotations", default=None, help="Random 90° rotations.")
@click.option("--crop-scale", type=click.FloatRange(0.1, 1.0),
              help="Random crops keep at least this fraction of the side.")
@click.option("--flips/--no-flips", default=None, help="Random mirror images.")
@click.option("--stretch-jitter", type=click.FloatRange(0, 2),
              help="Random gamma exp(U(-J, J)) on the stretched pixels (0: none).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="auto: bf16 (or fp16) mixed precision on CUDA, fp32 on CPU.")
@click.option("--eval-every", type=click.IntRange(0),
              help="Also validate (and save the run's state) every N steps.")
@click.option("--seed", type=int)
@click.option("--refit-ridge", type=click.FloatRange(min=0, min_open=True),
              help="After training, refit the image tower's output onto the training "
                   "captions by ridge regression with this relative ridge (0.1 measured on "
                   "the demo recipe; it costs description retrieval: README). Default: none.")
@click.option("--half", is_flag=True, help="Store the checkpoint in float16.")
@click.pass_obj
def train(config: Config, archive, recipe, base, out, run_dir, resume, restart, refit_ridge,
          half, **overrides):
    """Fine-tune a model contrastively on an archive's image-caption pairs (PAPERCLIP).

    Pairs are (preview, its proposal's summary or abstract); validation holds out
    whole proposals. The run validates every epoch, keeps the best weights by top-10 %
    retrieval, and saves its state in the run directory: stop it with Ctrl-C (or
    SIGTERM) and run the same command with --resume to continue the same curve.
    """
    from dataclasses import replace

    from .ml.model import load_model
    from .ml.train import RECIPE_BASES, RECIPES, TrainingInterrupted
    from .ml.train import train as run_training
    from .ml.training_run import TrainingRun
    from .workspace import ensure_demo_archive

    if resume and restart:
        raise click.UsageError("--resume and --restart exclude each other")
    settings = _train_settings(RECIPES[recipe], overrides)
    run_dir = Path(run_dir) if run_dir else Path(out).with_suffix(".run")
    if TrainingRun(run_dir).has_state() and not (resume or restart):
        raise VoClipError(f"{run_dir} holds an earlier run for {out}",
                          hint="add --resume to continue it, or --restart to start over")
    config = _with(config, archive=archive)
    the_archive = ensure_demo_archive(config, notify=_notify)
    base = base or RECIPE_BASES[recipe]
    model = load_model(base, device=config.device)
    try:
        result = run_training(model, the_archive, settings, run_dir=run_dir, resume=resume)
    except TrainingInterrupted as exc:
        click.echo(f"vo-clip: {exc.message}", err=True)
        click.echo("vo-clip: hint: run the same command with --resume to continue", err=True)
        click.get_current_context().exit(130)
    name = f"{model.card.name} fine-tuned on {the_archive.name}"
    training_data = result.as_training_data(the_archive, settings)
    if refit_ridge:
        from .ml.refit import refit_image_projection, training_pairs

        refit = refit_image_projection(model, training_pairs(the_archive, training_data),
                                       refit_ridge, progress=True)
        training_data["refit"] = refit.as_card()
        click.echo(f"refit the image output (ridge {refit_ridge}): matched cosine "
                   f"{refit.matched_cosine_before:.3f} -> {refit.matched_cosine_after:.3f} "
                   f"on {refit.pairs} training pairs")
    model.card = replace(model.card, base=base,
                         name=name.replace(" (untrained image tower)", ""),
                         training_data=training_data)
    model.save(out, half=half)
    from .ml.plots import write_training_curve

    curve = write_training_curve(TrainingRun(run_dir).read_log(), run_dir / "training_curve.png",
                                 best_step=result.best_step)
    best = result.history[[h["step"] for h in result.history].index(result.best_step)]
    click.echo(f"saved {out}: best at step {result.best_step} of {result.steps} (epoch "
               f"{result.best_epoch}), validation top-10% retrieval {best['val_top10']:.3f}, "
               f"loss {best['val_loss']:.3f}")
    click.echo(f"run log: {run_dir / 'metrics.jsonl'}; curve: {curve}")


def _train_settings(recipe, overrides: dict):
    """The recipe with the options the user gave (``None`` and empty mean 'not given')."""
    from dataclasses import replace

    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None and v != ()})


@cli.command(name="eval")
@click.option("--archive", type=click.Path(file_okay=False), help="Archive to evaluate on.")
@click.option("--model", "models", multiple=True,
              help="Model spec; repeat to compare models side by side (default: demo).")
@click.option("--split", type=click.Choice(["validation", "all"]), default="validation",
              show_default=True, help="Held-out proposals (the model card's, else those of "
                                      "another compared model, else a seeded 20 %), or "
                                      "everything.")
@click.option("--captions", type=click.Choice(["summary", "abstract"]), default="summary",
              show_default=True)
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write the JSON report only, without figures (see --out).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write report.json and the PNG figures into this directory.")
@click.option("--queries", "queries_file", type=click.Path(dir_okay=False),
              help="Text file of queries, one a line, for top-k retrieval "
                   "(default: PAPERCLIP's ten evaluation queries).")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 50),
              help="Previews listed (and drawn) per query.")
@click.pass_obj
def evaluate(config: Config, archive, models, split, captions, report, out_dir, queries_file,
             top_k):
    """PAPERCLIP's evaluation: retrieval accuracy vs k %, similarity distributions,
    the shuffled-caption baseline, top-k retrieval for a query list and, on the demo
    archive, query precision.

    \b
    Models are compared on the same previews: one whose card records no held-out
    proposals (a base model) is evaluated on those of the first model that does.
    --out DIR writes report.json, retrieval_accuracy.png, similarity_distributions.png
    and top_k_retrieval.png.
    """
    from .archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES

    # Read the query file before importing torch: a wrong path fails in a moment.
    retrieval_queries = _retrieval_queries(queries_file, PAPERCLIP_QUERIES, PARAPHRASE_QUERIES)
    from .ml.evaluate import evaluate as run_evaluation
    from .ml.model import load_model
    from .workspace import ensure_demo_archive

    config = _with(config, archive=archive)
    the_archive = ensure_demo_archive(config, notify=_notify)
    loaded = {spec: load_model(spec, device=config.device) for spec in models or ("demo",)}
    shared_split = next((m.card.training_data["validation_proposals"] for m in loaded.values()
                         if m.card.training_data.get("validation_proposals")), None)
    reports = {}
    for spec in list(loaded):
        model = loaded.pop(spec)  # one model in memory at a time once evaluated
        own_split = model.card.training_data.get("validation_proposals")
        reports[spec] = run_evaluation(
            model, the_archive, split=split, captions=captions, queries=PAPERCLIP_QUERIES,
            paraphrases=PARAPHRASE_QUERIES, retrieval_queries=retrieval_queries, top_k=top_k,
            validation_proposals=None if own_split else shared_split, progress=True)
    if report:
        _write_text(Path(report), json.dumps(reports, indent=2) + "\n")
    _print_comparison(reports)
    if out_dir:
        from .ml.plots import write_plots

        out = Path(out_dir).expanduser()
        written = [_write_text(out / "report.json", json.dumps(reports, indent=2) + "\n")]
        try:
            written += write_plots(reports, the_archive, out)
        except OSError as exc:
            raise VoClipError(f"cannot write the figures into {out}: "
                              f"{exc.strerror or exc}") from None
        for path in written:
            click.echo(f"wrote {path}")


def _retrieval_queries(queries_file, paperclip: dict, paraphrases: dict) -> dict:
    """Query text → the demo kinds that answer it (None where unknown) for top-k retrieval.

    A user's query that is one of the demo's evaluation queries keeps its kinds, so it
    is still judged on the demo archive; on other archives kinds are ignored.
    """
    from .ml.evaluate import read_query_file

    if not queries_file:
        return dict(paperclip)
    known = {**paraphrases, **paperclip}
    return {text: known.get(text) for text in read_query_file(queries_file)}


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating its directory), or fail in one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise VoClipError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _print_comparison(reports: dict) -> None:
    specs = list(reports)
    rows = [("pairs (proposals)", lambda r: f"{r['pairs']} ({r['proposals']})")]
    rows += [(f"retrieval top {k}%", lambda r, k=k: f"{r['retrieval_accuracy'][k]:.3f}")
             for k in reports[specs[0]]["retrieval_accuracy"]]
    rows += [("shuffled captions, top 10%",
              lambda r: f"{r['shuffled_caption_accuracy']['10']:.3f}"),
             ("matched similarity (mean)", lambda r: f"{r['similarity']['matched']['mean']:.3f}"),
             ("shuffled similarity (mean)", lambda r: f"{r['similarity']['shuffled']['mean']:.3f}"),
             ("query precision@10", lambda r: str(r.get("mean_queries_precision_at_10", "-"))),
             ("paraphrase precision@10",
              lambda r: str(r.get("mean_paraphrases_precision_at_10", "-"))),
             ("top-k hits answering their query", _top_k_precision)]
    width = max(len(name) for name, _ in rows) + 2
    click.echo(" " * width + "  ".join(f"{s[-24:]:>24}" for s in specs))
    for name, cell in rows:
        click.echo(f"{name:<{width}}" + "  ".join(f"{cell(reports[s]):>24}" for s in specs))


def _top_k_precision(report: dict) -> str:
    """Fraction of the top-k hits whose kind answers their query ('-' without truth)."""
    entries = report.get("top_k_retrieval", {}).get("queries", [])
    judged = [hit["answers"] for entry in entries for hit in entry["hits"] if "answers" in hit]
    if not judged:
        return "-"
    return f"{sum(judged) / len(judged):.3f} (k={report['top_k_retrieval']['k']})"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def info(config: Config, as_json):
    """Show the archive, index and model in use, with their paths."""
    report = {"vo_clip": __version__, "home": str(config.home),
              "archive": _describe_archive(config), "index": _describe_index(config),
              "catalog": _describe_catalog(config), "model": _describe_model(config)}
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for section in ("archive", "index", "catalog", "model"):
        click.echo(f"{section}:")
        for key, value in report[section].items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            click.echo(f"  {key:<16} {value}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", type=click.IntRange(1),
              help="Worker threads answering requests at once (default: the threads "
                   "setting, 8).")
@click.option("--base-url", default=None,
              help="Public URL of the service when behind a proxy (default: the URL each "
                   "request was sent to); also $VO_CLIP_BASE_URL.")
@click.option("--postgres", "postgres_dsn", default=None, metavar="DSN",
              help="Serve the catalog loaded by 'vo-clip postgres load' from this PostgreSQL "
                   "database (the postgres_dsn setting; also $VO_CLIP_POSTGRES_DSN).")
@click.pass_obj
def serve(config: Config, host, port, threads, base_url, postgres_dsn):
    """Serve the search page, TAP (sync, async, VOSI), DataLink and /oai (waitress).

    Point TOPCAT's TAP window or pyvo.dal.TAPService at http://HOST:PORT/tap.
    """
    from .openmp import sleep_while_waiting

    sleep_while_waiting()  # before torch loads: a query's text then encodes on two threads
    from service.app import close_app, create_app
    from service.server import create_server

    from .workspace import ensure_index

    config = _with(config, base_url=base_url, threads=threads, postgres_dsn=postgres_dsn)
    ensure_index(config, notify=_notify)  # the first run builds the demo index here
    app = create_app(config)
    _notify("loading the model")
    app.extensions["vo_clip.tap"]().warm()  # the first similarity query is then fast
    try:
        server = create_server(app, config, host=host, port=port)
    except OSError as exc:
        raise VoClipError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          hint="choose another --port, or stop the program using it")
    root = (config.base_url or f"http://{host}:{port}").rstrip("/")
    click.echo(f"vo_clip {__version__} serving {config.index_dir}\n"
               f"  search page: {root}/\n"
               f"  TAP: {root}/tap   (TOPCAT: File > Load Table > TAP; pyvo.dal.TAPService)\n"
               f"  Ctrl+C to stop")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        close_app(app)


@cli.command()
@click.option("--out", default="registry/records", show_default=True,
              type=click.Path(file_okay=False), help="Directory to write the records to.")
@click.option("--base-url", default=None,
              help="Public URL of the service (default: the base_url setting, else "
                   "http://127.0.0.1:8000, where 'vo-clip serve' listens).")
@click.option("--validate/--no-validate", default=True, show_default=True,
              help="Validate the records against the IVOA XSDs ($VO_CLIP_XSD_DIR, or "
                   "Debian's python3-gavo) before writing them.")
@click.pass_obj
def registry(config: Config, out, base_url, validate):
    """Write this deployment's VOResource records for the IVOA Registry.

    One file each for the TAP service, the DataLink service, the naming authority, the
    publishing organisation and the publishing registry itself, which 'vo-clip serve'
    also publishes over OAI-PMH at BASE/oai for the Registry to harvest. The identity
    (authority, titles, publisher, contact, subjects, coverage, record_created and
    record_updated) comes from the settings: see registry/deployment.toml.
    """
    from .timestamps import utc_seconds
    from .vo.registry import deployment_records

    records = deployment_records(_with(config, base_url=base_url))
    report = _validate_records(records) if validate else "not validated (--no-validate)"
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        path, document = folder / f"{record.name}.xml", record.to_xml()
        previous = path.read_bytes() if path.is_file() else None
        path.write_bytes(document)
        click.echo(f"wrote {path}  {record.identifier}")
        if previous not in (None, document) and \
                f'updated="{record.datestamp}"'.encode() in previous:
            now = utc_seconds()
            _notify(f"{path.name} changed but keeps updated={record.datestamp}: set "
                    f"record_updated = {now!r} so that harvesters pick up the change")
    click.echo(report)


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Archive directory to create, or to resume into.")
@click.option("--abstracts", default=None,
              help="STScI Proposal Abstracts Catalog (abstracts.cat): a file or an http(s) URL "
                   "(default: the STScI URL).")
@click.option("--cycles", help="Cycle range, e.g. 20-25 or 22.")
@click.option("--proposals", help="Proposal IDs, comma-separated, e.g. 12345,13000.")
@click.option("--per-proposal", default=20, show_default=True, type=click.IntRange(1),
              help="At most this many previews per proposal (seeded sample).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--grayscale-only", is_flag=True, help="Leave out colour previews.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1),
              help="Parallel downloads.")
@click.option("--mast-url", default=None, help="MAST server (default: https://mast.stsci.edu).")
@click.pass_obj
def ingest(config: Config, out, abstracts, cycles, proposals, per_proposal, seed,
           grayscale_only, workers, mast_url):
    """Build an archive from MAST: public HST previews with their proposals' abstracts.

    Selects proposals of the abstracts catalog by --cycles and/or --proposals (both:
    a proposal must match both), keeps each one's "total" PREVIEW images (at most
    --per-proposal, sampled with --seed), centred and resized to 512 px, with MAST's
    metadata as ObsCore columns. Re-running the same command resumes: finished
    proposals and downloaded previews are not fetched again.
    """
    from .archive import mast

    options = mast.IngestOptions(
        out=Path(out).expanduser(), abstracts=abstracts or mast.ABSTRACTS_URL,
        cycles=mast.parse_cycles(cycles) if cycles else None,
        proposals=[p for p in proposals.split(",") if p.strip()] if proposals else None,
        per_proposal=per_proposal, seed=seed, grayscale_only=grayscale_only,
        workers=workers, mast_url=mast_url or mast.MAST_URL)
    summary = mast.ingest(options)
    for line in summary.lines():
        click.echo(line)
    click.echo(f"archive: {options.out}")


@cli.command()
@click.option("--archive", type=click.Path(file_okay=False),
              help="Archive directory (default: the demo archive).")
@click.option("--backend", "backend_kind", type=click.Choice(["openai", "transformers"]),
              default="openai", show_default=True,
              help="An OpenAI-compatible HTTP endpoint, or a local transformers model "
                   "(decoding constrained to the JSON schema; pip install "
                   "'vo_clip[local-llm]').")
@click.option("--llm-url", envvar="VO_CLIP_LLM_URL",
              help="API root of the endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, "
                   "llama.cpp's server); also $VO_CLIP_LLM_URL. Key: $VO_CLIP_LLM_API_KEY "
                   "or $OPENAI_API_KEY.")
@click.option("--llm-model", envvar="VO_CLIP_LLM_MODEL",
              help="Model name the endpoint serves; also $VO_CLIP_LLM_MODEL.")
@click.option("--model-path", help="With --backend transformers: a causal LM directory "
                                   "(or hub name).")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(1),
              help="Requests per abstract before it is recorded as a failure.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N proposals.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
              help="Where valid summaries are cached (default: HOME/summaries).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def summarize(config: Config, archive, backend_kind, llm_url, llm_model, model_path, retries,
              limit, cache_dir, as_json):
    """Write PAPERCLIP's guided summaries of the proposal abstracts into an archive.

    For each proposal, a language model lists its objects and phenomena and its
    science use cases (1-5 each, schema-validated) into summary_objects and
    summary_use_cases. Invalid answers are retried, then listed in
    ARCHIVE/summaries-failures.json; valid ones are cached by abstract, so a re-run
    resumes where the last one stopped.

    \b
    Examples:
      vo-clip summarize --archive ARCHIVE --llm-url http://127.0.0.1:8000/v1 \\
          --llm-model Qwen/Qwen2.5-7B-Instruct
      vo-clip summarize --archive ARCHIVE --backend transformers --model-path ./my-llm
    """
    from .archive.summarize import (
        OpenAICompatibleBackend,
        TransformersBackend,
        summarize_archive,
    )

    config = _with(config, archive=archive)
    if backend_kind == "openai":
        if not llm_url or not llm_model:
            raise click.UsageError("--backend openai needs --llm-url and --llm-model")
        backend = OpenAICompatibleBackend(llm_url, llm_model)
    else:
        if not model_path:
            raise click.UsageError("--backend transformers needs --model-path")
        backend = TransformersBackend(model_path, device=config.device)
    try:
        report = summarize_archive(config.archive_dir, backend, retries=retries,
                                   cache_dir=cache_dir or config.home / "summaries",
                                   progress=sys.stderr.isatty(), limit=limit)
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for line in report.lines():
        click.echo(line)


# -- PostgreSQL ------------------------------------------------------------------------

@cli.group()
def postgres():
    """Serve the catalog from PostgreSQL 15 + pgsphere (archive scale, shared replicas).

    \b
      vo-clip postgres load --dsn DSN                  # the index's catalog, by COPY
      vo-clip postgres attach --dsn DSN --obscore ivoa.obscore   # beside a DaCHS ObsCore
      vo-clip postgres check --dsn DSN                 # can the service read it?
      vo-clip serve --postgres DSN
    """


_DSN = click.option("--dsn", default=None, metavar="DSN",
                    help="libpq connection string (default: the postgres_dsn setting).")
_SCHEMA = click.option("--schema", default=None,
                       help="Schema of vo_clip's objects (default: the postgres_schema "
                            "setting, vo_clip).")
_GRANT = click.option("--grant", "grant", multiple=True, metavar="ROLE",
                      help="Login role the service connects as: granted SCHEMA_service "
                           "(repeatable).")


@postgres.command(name="load")
@_DSN
@_SCHEMA
@_GRANT
@click.pass_obj
def postgres_load(config: Config, dsn, schema, grant):
    """Load (or reload, atomically) the index's catalog into PostgreSQL."""
    _postgres_load(config, dsn, schema, grant, obscore=None, key="obs_id")


@postgres.command(name="attach")
@_DSN
@_SCHEMA
@_GRANT
@click.option("--obscore", required=True, metavar="SCHEMA.TABLE",
              help="The existing ObsCore table or view to serve (e.g. DaCHS's ivoa.obscore).")
@click.option("--key", default="obs_id", show_default=True,
              help="Column joining it to the index's catalog (same name in both).")
@click.pass_obj
def postgres_attach(config: Config, dsn, schema, grant, obscore, key):
    """Serve an existing ObsCore (never copied or changed) with the index's embeddings."""
    _postgres_load(config, dsn, schema, grant, obscore=obscore, key=key)


@postgres.command(name="check")
@_DSN
@_SCHEMA
@click.pass_obj
def postgres_check(config: Config, dsn, schema):
    """Check that the service's role can read the loaded catalog; print its counts."""
    from .search.backends import CompiledQuery, StatementError, StatementRefused
    from .search.backends.postgres import PostgresBackend
    from .search.backends.postgres_load import connect
    from .search.index import EmbeddingIndex
    from .vo.schema import published_tables

    dsn, schema = _postgres_target(config, dsn, schema)
    with connect(dsn) as conn:
        superuser, user = conn.execute("SELECT rolsuper, current_user FROM pg_roles WHERE "
                                       "rolname = current_user").fetchone()
    try:
        expected = len(EmbeddingIndex.open(config.index_dir))
    except VoClipError:
        expected = None
    backend = PostgresBackend(dsn, schema=schema, authority=config.authority,
                              tables=published_tables(), expected_rows=expected)
    try:
        problem = backend.problem()
        if problem:
            raise VoClipError(problem, hint="load it with 'vo-clip postgres load', and grant "
                                            "the service's role with --grant")
        for key, value in backend.describe().items():
            click.echo(f"  {key:<16} {value}")
        with backend.session(seconds=30, limit="lookup_time_limit") as session:
            counts = [session.run(CompiledQuery(f"SELECT count(*) FROM {name}"), [], None, 1,
                                  10**6)[0][0] for name in ("vo_clip_obscore", "vo_clip_hst")]
            try:
                session.run(CompiledQuery("SELECT 1 FROM observations LIMIT 1"), [], None, 1,
                            10**6)
                raise VoClipError(f"queries can read {schema}.observations: the reader role "
                                  "has privileges it should not")
            except StatementRefused:
                pass
    except StatementError as exc:
        raise VoClipError(exc.message) from None
    finally:
        backend.close()
    click.echo(f"  {'served':<16} ivoa.ObsCore {counts[0]} rows, hst.observations "
               f"{counts[1]} rows, as role {backend.reader} (read-only)")
    if superuser:
        click.echo(f"vo-clip: warning: {user} is a superuser: serve as a login role granted "
                   f"only {schema}_service", err=True)
    click.echo("ok")


def _postgres_target(config: Config, dsn, schema) -> tuple[str, str]:
    dsn = dsn or config.postgres_dsn
    if not dsn:
        raise VoClipError("no PostgreSQL database named",
                          hint="give --dsn, or set postgres_dsn ($VO_CLIP_POSTGRES_DSN)")
    return dsn, schema or config.postgres_schema


def _postgres_load(config: Config, dsn, schema, grant, *, obscore, key) -> None:
    from .search.backends.postgres_load import load_catalog
    from .search.index import EmbeddingIndex
    from .vo.schema import published_tables
    from .vo.tap_schema import tap_schema_rows

    dsn, schema = _postgres_target(config, dsn, schema)
    index = EmbeddingIndex.open(config.index_dir)
    tables = published_tables()
    result = load_catalog(dsn, index.catalog.path, tables=tables,
                          tap_schema_rows=tap_schema_rows(tables), schema=schema,
                          obscore=obscore, key=key, grant=grant,
                          identity={"index": str(index.root), "index_rows": len(index),
                                    "model_fingerprint": index.manifest.model_fingerprint},
                          progress=sys.stderr.isatty())
    for warning in result.warnings:
        click.echo(f"vo-clip: warning: {warning}", err=True)
    where = f"attached to {obscore} on {key}" if obscore else "native"
    click.echo(f"loaded {result.rows} observations into schema {schema} ({where}; "
               f"{result.served_rows} served) in {result.seconds:.1f} s\n"
               f"  queries run as {result.reader_role}; grant {result.service_role} to the "
               f"service's login role\n  serve: vo-clip serve --postgres DSN")


# -- helpers ---------------------------------------------------------------------------

def _with(config: Config, **values) -> Config:
    return config.updated({k: v for k, v in values.items() if v is not None},
                          origin="the command line")


def _notify(message: str) -> None:
    click.echo(f"vo-clip: {message}", err=True)


def _validate_records(records) -> str:
    """Validate every record against the IVOA XSDs; what was done, or why not."""
    from .vo.xsd import IvoaSchemas

    try:
        schemas = IvoaSchemas()
    except VoClipError as exc:
        return f"not validated: {exc}"
    for record in records:
        errors = schemas.errors(record.to_xml())
        if errors:
            raise VoClipError(f"the {record.name} record does not validate: {errors[0]}",
                              hint="check the identity settings it names")
    return f"validated {len(records)} records against the IVOA schemas in {schemas.folder}"


def _columns(option: str | None, available: list[str]) -> list[str]:
    if option == "all":
        return list(available)
    wanted = [c.strip() for c in option.split(",")] if option else DEFAULT_COLUMNS
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise VoClipError(f"unknown column(s) {', '.join(unknown)}",
                          hint=f"columns: {', '.join(available)}")
    return wanted if "obs_id" in wanted else ["obs_id", *wanted]


def _emit(table, fmt: str, the_query) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.colnames)
        writer.writerows([("" if v is None else v) for v in row] for row in table.iterrows())
    elif fmt == "votable":
        from .vo.votable import table_to_votable

        sys.stdout.flush()
        sys.stdout.buffer.write(table_to_votable(
            table, description=f"vo_clip search by {the_query.describe()}"))
    else:
        table["similarity"].format = ".4f"
        if "match" in table.colnames:
            table["match"].format = ".2f"
        table.add_column(list(range(1, len(table) + 1)), name="rank", index=0)
        for line in table.pformat(max_lines=-1, max_width=-1):
            click.echo(line)


def _describe_archive(config: Config) -> dict:
    from .archive import Archive

    try:
        return Archive.open(config.archive_dir).describe()
    except VoClipError as exc:
        return {"path": str(config.archive_dir), "status": exc.message}


def _describe_index(config: Config) -> dict:
    from .search.index import EmbeddingIndex

    try:
        return EmbeddingIndex.open(config.index_dir).describe()
    except VoClipError as exc:
        return {"path": str(config.index_dir), "status": exc.message}


def _describe_catalog(config: Config) -> dict:
    """The backend TAP queries run on: the index's SQLite file, or PostgreSQL."""
    if not config.postgres_dsn:
        return {"backend": "sqlite (embedded)", "path": str(config.index_dir / "catalog.sqlite")}
    from .search.backends.postgres import PostgresBackend
    from .vo.schema import published_tables

    backend = PostgresBackend(config.postgres_dsn, schema=config.postgres_schema,
                              authority=config.authority, tables=published_tables())
    try:
        return {"backend": "postgresql", **backend.describe()}
    finally:
        backend.close()


def _describe_model(config: Config) -> dict:
    from .ml.demo_model import DEMO_CHECKPOINT, DEMO_SPEC
    from .search.index import EmbeddingIndex
    from .workspace import model_spec

    try:
        spec = model_spec(config, EmbeddingIndex.open(config.index_dir))
    except VoClipError:
        spec = model_spec(config)
    path = DEMO_CHECKPOINT if spec == DEMO_SPEC else Path(spec).expanduser()
    if path.is_file():
        from .ml.checkpoint import read_card

        try:
            card = read_card(path).summary()
        except VoClipError as exc:
            return {"spec": spec, "path": str(path), "status": exc.message}
        card["metrics"] = _headline_metrics(card["metrics"])
        card["training_data"] = {k: v for k, v in card["training_data"].items()
                                 if k not in ("history", "validation_proposals")}
        return {"spec": spec, "path": str(path.resolve()), **card}
    return {"spec": spec}


def _headline_metrics(metrics: dict) -> dict:
    """The few numbers worth a line each; the full report stays in the card."""
    out = {}
    for name, report in metrics.items():
        if isinstance(report, dict) and "retrieval_accuracy" in report:
            out[name] = {"top10pct_retrieval": report["retrieval_accuracy"].get("10"),
                         "shuffled_top10pct": report["shuffled_caption_accuracy"].get("10"),
                         "query_precision_at_10": report.get("mean_queries_precision_at_10"),
                         "paraphrase_precision_at_10":
                             report.get("mean_paraphrases_precision_at_10")}
        else:
            out[name] = report
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vo-clip`` script."""
    cli.main(args=argv, prog_name="vo-clip")

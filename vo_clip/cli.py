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
    A typical session:
      vo-clip index --archive ARCHIVE --model MODEL   # embed every preview once
      vo-clip query "planetary nebula with a bright central star"
      vo-clip query --like OBS_ID --top 5            # more like this observation
      vo-clip info                                   # what is in use, and where

    Settings come from defaults, --config FILE, VO_CLIP_* variables and flags, in
    that order. Run 'vo-clip COMMAND --help' for each command.
    """
    ctx.obj = Config.load(file=config_file, home=home, device=device)


@cli.command()
@click.option("--archive", type=click.Path(file_okay=False), help="Archive directory.")
@click.option("--model", help="Model spec: a checkpoint file, a model directory, "
                              "hf-hub:ORG/REPO or ARCH:TAG (e.g. ViT-B-16:openai).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Index directory (default: HOME/indexes/<archive name>).")
@click.option("--rebuild", is_flag=True,
              help="Re-embed everything, replacing an index made with another model.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.pass_obj
def index(config: Config, archive, model, out, rebuild, batch_size):
    """Embed every preview of an archive into an index directory.

    Re-running after the archive changed embeds only new or changed previews; an
    index built with another model is refused unless --rebuild is given.
    """
    from .archive import Archive
    from .ml.model import load_model
    from .search.index import build_index

    config = _with(config, archive=archive, model=model, index=out)
    the_archive = Archive.open(config.archive_dir)
    the_model = load_model(_require_model(config), device=config.device)
    built = build_index(the_archive, the_model, config.index_dir, rebuild=rebuild,
                        batch_size=batch_size)
    click.echo(f"indexed {len(built.index)} observations of {the_archive.name} with "
               f"{the_model.card.name} into {built.index.root} "
               f"({built.embedded} embedded, {built.reused} reused)")


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
    from .search.engine import Query, SearchEngine
    from .search.index import EmbeddingIndex

    config = _with(config, index=index_dir, model=model)
    the_query = Query(text=text, image=image, like=like)
    the_index = EmbeddingIndex.open(config.index_dir)
    the_model = None
    if like is None:
        from .ml.model import load_model

        spec = config.model or the_index.manifest.model.get("spec")
        the_model = load_model(_require_model(config, spec), device=config.device)
    engine = SearchEngine(the_index, the_model)
    search_filter = SearchFilter(where=where, instrument=instrument,
                                 cone=tuple(cone) if cone else None)
    hits = engine.search(the_query, top=top, search_filter=search_filter)
    table = engine.table(hits, _columns(columns, the_index.catalog.columns))
    _emit(table, fmt, the_query)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def info(config: Config, as_json):
    """Show the archive, index and model in use, with their paths."""
    report = {"vo_clip": __version__, "home": str(config.home),
              "archive": _describe_archive(config), "index": _describe_index(config),
              "model": _describe_model(config)}
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for section in ("archive", "index", "model"):
        click.echo(f"{section}:")
        for key, value in report[section].items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            click.echo(f"  {key:<16} {value}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1))
@click.pass_obj
def serve(config: Config, host, port, threads):
    """Serve the index over HTTP (a production WSGI server, waitress)."""
    import waitress

    from service.app import create_app

    app = create_app(config)
    click.echo(f"vo_clip {__version__} serving {config.index_dir} on http://{host}:{port}/ "
               f"(Ctrl+C to stop)")
    waitress.serve(app, host=host, port=port, threads=threads, ident=f"vo_clip/{__version__}")


# -- helpers ---------------------------------------------------------------------------

def _with(config: Config, **values) -> Config:
    return config.updated({k: v for k, v in values.items() if v is not None},
                          origin="the command line")


def _require_model(config: Config, spec: str | None = None) -> str:
    spec = spec or config.model
    if not spec:
        raise VoClipError("no model given", hint="pass --model SPEC or set VO_CLIP_MODEL")
    return spec


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


def _describe_model(config: Config) -> dict:
    spec = config.model
    if spec is None:
        try:
            from .search.index import EmbeddingIndex

            spec = EmbeddingIndex.open(config.index_dir).manifest.model.get("spec")
        except VoClipError:
            spec = None
    if not spec:
        return {"status": "no model configured"}
    path = Path(spec).expanduser()
    if path.is_file():
        from .ml.checkpoint import read_card

        try:
            return {"spec": spec, "path": str(path.resolve()), **read_card(path).summary()}
        except VoClipError as exc:
            return {"spec": spec, "status": exc.message}
    return {"spec": spec}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vo-clip`` script."""
    cli.main(args=argv, prog_name="vo-clip")

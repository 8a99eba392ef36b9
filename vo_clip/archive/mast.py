"""Build an archive from MAST: HST proposals, their public previews and their abstracts.

This is PAPERCLIP's data pipeline made repeatable. For every selected proposal of the
STScI abstracts catalog, astroquery asks MAST for the proposal's public HST
observations and their products; the "total" (all-filter, white-light) ``PREVIEW``
images are kept, at most ``per_proposal`` of them sampled with a seeded generator, and
each is downloaded, centre-cropped and resized to 512 px. The observation's MAST
metadata fills the ObsCore columns; the catalog gives the proposal's title and abstract.

A whole archive takes hours and MAST drops connections, so the run is resumable:

* every preview is written to a temporary file and renamed into place, so a file under
  ``previews/`` is always complete, and a present file is never fetched again;
* ``ingest-state.json`` (also replaced atomically) records each finished proposal with
  its rows, so a second run skips it without asking MAST anything;
* the observations table is written once, at the end, by :meth:`Archive.write`, from the
  rows in the state file: an interrupted run leaves no half-written table and a resumed
  run no duplicate rows. Runs with other selections into the same directory add their
  proposals to it; runs with other sampling options (``per_proposal``, ``seed``,
  ``grayscale_only``) are refused, as they would mix two samples.

``mast_url`` points every request (queries, column configurations, downloads) at another
server; the tests replay recorded MAST responses from one on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
import warnings
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import requests
from astropy.table import Table

from ..errors import VoClipError
from .abstracts import ABSTRACTS_URL, Proposal, load_abstracts
from .archive import Archive

__all__ = [
    "MAST_URL",
    "STATE_FILE",
    "IngestOptions",
    "IngestSummary",
    "MastClient",
    "ingest",
    "parse_cycles",
]

MAST_URL = "https://mast.stsci.edu"
STATE_FILE = "ingest-state.json"
PREVIEW_SIZE = 512

#: Reasons a proposal or a preview is left out, as the summary prints them.
NOT_IN_CATALOG = "not in the abstracts catalog"
NO_OBSERVATIONS = "no public HST observations"
NO_PREVIEWS = "no total previews"
COLOUR = "colour preview excluded"
DOWNLOAD_FAILED = "download failed after retries"
UNREADABLE = "preview not a readable image"

_FLOAT_COLUMNS = ("s_ra", "s_dec", "t_min", "t_max", "t_exptime", "em_min", "em_max")
_TEXT_COLUMNS = ("dataproduct_type", "obs_collection", "obs_id", "target_name", "s_region",
                 "instrument_name", "filters")
_RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass
class IngestOptions:
    """What to ingest and how; see ``vo-clip ingest --help``.

    ``cycles`` (inclusive range) and ``proposals`` both restrict the selection; given
    together, a proposal must satisfy both.
    """

    out: Path
    abstracts: str = ABSTRACTS_URL
    cycles: tuple[int, int] | None = None
    proposals: list[str] | None = None
    per_proposal: int = 20
    seed: int = 0
    grayscale_only: bool = False
    workers: int = 4
    mast_url: str = MAST_URL
    retries: int = 4
    backoff: float = 1.0
    timeout: float = 60.0
    progress: bool = True


@dataclass
class IngestSummary:
    """What a run did: proposals and previews ingested, and what was skipped and why."""

    selected: int = 0
    proposals: int = 0
    resumed: int = 0
    observations: int = 0
    downloaded: int = 0
    reused: int = 0
    skipped: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The summary as ``vo-clip ingest`` prints it."""
        out = [f"ingested {self.observations} observations from {self.proposals} of "
               f"{self.selected} proposals ({self.resumed} already done; "
               f"{self.downloaded} previews downloaded, {self.reused} already present)"]
        out += [f"skipped {n}: {reason}" for reason, n in sorted(self.skipped.items())]
        return out


def parse_cycles(text: str) -> tuple[int, int]:
    """``"20-25"`` → ``(20, 25)``; ``"22"`` → ``(22, 22)``."""
    lo, _, hi = text.partition("-")
    try:
        bounds = (int(lo), int(hi or lo))
    except ValueError:
        raise VoClipError(f"bad cycle range {text!r}", hint="write e.g. 20-25 or 22") from None
    if bounds[0] > bounds[1]:
        raise VoClipError(f"bad cycle range {text!r}: the first cycle is after the last")
    return bounds


class MastClient:
    """astroquery's ``Observations``, pointed at ``mast_url``, plus preview downloads.

    Parameters
    ----------
    mast_url : str
        Base URL of the MAST server (the portal API lives under ``/api/v0``).
    """

    def __init__(self, mast_url: str = MAST_URL, *, timeout: float = 60.0):
        try:
            from astroquery.mast import ObservationsClass
        except ImportError:
            raise VoClipError("vo-clip ingest needs astroquery, which is not installed",
                              hint="pip install 'vo_clip[ingest]'") from None

        base = mast_url.rstrip("/")
        self.observations_api = ObservationsClass()
        portal = self.observations_api._portal_api_connection
        portal.MAST_REQUEST_URL = f"{base}/api/v0/invoke"
        portal.COLUMNS_CONFIG_URL = f"{base}/portal/Mashup/Mashup.asmx/columnsconfig"
        portal.MAST_DOWNLOAD_URL = f"{base}/api/v0.1/Download/file"
        portal.MAST_BUNDLE_URL = f"{base}/api/v0.1/Download/bundle"
        portal.TIMEOUT = timeout
        self.download_url = portal.MAST_DOWNLOAD_URL
        self.timeout = timeout

    def observations(self, proposal_id: str) -> Table:
        """The public HST observations of a proposal (an empty table if none)."""
        return self._quietly(self.observations_api.query_criteria, obs_collection="HST",
                             proposal_id=proposal_id, dataRights="PUBLIC")

    def previews(self, observations: Table) -> Table:
        """The ``PREVIEW`` products of ``observations``."""
        products = self._quietly(self.observations_api.get_product_list, observations)
        if len(products) == 0:
            return products
        return self.observations_api.filter_products(products, productType="PREVIEW")

    def close(self) -> None:
        """Close the HTTP connections astroquery keeps open."""
        self.observations_api._session.close()

    def file_url(self, uri: str) -> str:
        return f"{self.download_url}?uri={quote(uri, safe=':/')}"

    @staticmethod
    def _quietly(call, *args, **kwargs) -> Table:
        from astroquery.exceptions import NoResultsWarning

        try:
            with warnings.catch_warnings():
                # An empty result is an answer here (a proposal with nothing public),
                # handled by the caller; astroquery warns about it.
                warnings.simplefilter("ignore", NoResultsWarning)
                return call(*args, **kwargs)
        except Exception as exc:  # requests, astroquery and JSON errors alike
            raise VoClipError(f"MAST query failed: {exc}",
                              hint="re-run the same command to resume") from exc


# -- the run -------------------------------------------------------------------------
def ingest(options: IngestOptions, *, client: MastClient | None = None) -> IngestSummary:
    """Ingest the selected proposals into the archive ``options.out``; resumable.

    Raises
    ------
    VoClipError
        If the selection is empty or MAST cannot be queried; previews that cannot be
        downloaded are skipped (and retried by the next run) instead.
    """
    from tqdm import tqdm

    out = Path(options.out).expanduser()
    catalog = load_abstracts(options.abstracts, timeout=options.timeout)
    selected, summary = _select(catalog, options)
    own = client is None
    client = client or MastClient(options.mast_url, timeout=options.timeout)
    state = _load_state(out, _sampling(options))
    try:
        for pid in tqdm(selected, desc="proposals", unit="proposal",
                        disable=not options.progress):
            done = state["proposals"].get(pid)
            if done and done["complete"]:
                summary.resumed += 1
            else:
                done = _ingest_proposal(client, catalog[pid], out, options, summary)
                state["proposals"][pid] = done
                _save_state(out, state)
            for reason in done["skipped"]:
                summary.skipped[reason] += 1
            summary.proposals += bool(done["rows"])
    finally:
        if own:
            client.close()
    _write_archive(out, state, options)
    summary.observations = sum(len(state["proposals"][p]["rows"]) for p in selected)
    return summary


def _select(catalog: dict[str, Proposal], options: IngestOptions):
    if options.cycles is None and options.proposals is None:
        raise VoClipError("no proposals selected",
                          hint="pass --cycles FIRST-LAST and/or --proposals ID,ID")
    summary = IngestSummary()
    if options.proposals is not None:
        wanted = [str(p).strip() for p in options.proposals]
        missing = [p for p in wanted if p not in catalog]
        summary.skipped[NOT_IN_CATALOG] += len(missing)
        ids = [p for p in wanted if p in catalog]
    else:
        ids = list(catalog)
    if options.cycles is not None:
        lo, hi = options.cycles
        ids = [p for p in ids if catalog[p].cycle is not None and lo <= catalog[p].cycle <= hi]
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise VoClipError("no proposal of the abstracts catalog matches the selection")
    summary.selected = len(ids)
    return ids, summary


def _ingest_proposal(client, proposal: Proposal, out: Path, options, summary) -> dict:
    """One proposal's rows and skip reasons; ``complete`` is False if a download failed."""
    observations = client.observations(proposal.id)
    if len(observations) == 0:
        return {"complete": True, "rows": [], "skipped": [NO_OBSERVATIONS]}
    chosen = _choose_previews(client.previews(observations), observations, proposal, options)
    if not chosen:
        return {"complete": True, "rows": [], "skipped": [NO_PREVIEWS]}
    jobs = [(obs, product, f"previews/{proposal.id}/{_safe(obs['obs_id'])}.png")
            for obs, product in chosen]
    with requests.Session() as session, \
            ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        outcomes = list(pool.map(
            lambda job: _fetch(client, session, out / job[2], job[1], options), jobs))
    rows, skipped = [], []
    for (obs, product, preview), outcome in zip(jobs, outcomes):
        if outcome in ("downloaded", "reused"):
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            rows.append(_row(obs, product, proposal, preview, client))
        else:
            skipped.append(outcome)
    return {"complete": DOWNLOAD_FAILED not in skipped, "rows": rows, "skipped": skipped}


def _choose_previews(products: Table, observations: Table, proposal: Proposal, options):
    """(observation, product) pairs: total previews, one per observation, sampled."""
    by_obsid = {str(obs["obsid"]): obs for obs in observations}
    pairs: dict[str, tuple] = {}
    for product in sorted(products, key=lambda p: str(p["dataURI"])):
        if not _is_total(product) or (options.grayscale_only and _named_colour(product)):
            continue
        obs = by_obsid.get(_parent(product))
        if obs is not None and str(obs["obs_id"]) not in pairs:
            pairs[str(obs["obs_id"])] = (obs, product)
    keys = sorted(pairs)
    if len(keys) > options.per_proposal:
        rng = np.random.default_rng([options.seed, zlib.crc32(proposal.id.encode())])
        keys = sorted(rng.choice(keys, size=options.per_proposal, replace=False).tolist())
    return [pairs[k] for k in keys]


def _parent(product) -> str:
    names = product.colnames
    parent = str(product["parent_obsid"]) if "parent_obsid" in names else ""
    return parent or str(product["obsID"])


def _is_total(product) -> bool:
    text = f"{product['productFilename']} {_text(product, 'productSubGroupDescription')}"
    return "total" in text.lower()


def _named_colour(product) -> bool:
    text = " ".join(_text(product, c) for c in
                    ("productFilename", "productSubGroupDescription", "description"))
    return "color" in text.lower() or "colour" in text.lower()


def _text(row, column: str) -> str:
    if column not in row.colnames or np.ma.is_masked(row[column]):
        return ""
    return str(row[column])


def _safe(name) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


# -- downloads -------------------------------------------------------------------------
def _fetch(client: MastClient, session, path: Path, product, options) -> str:
    """Download, check and store one preview: ``downloaded``, ``reused`` or a skip reason."""
    if path.is_file():
        return "reused"
    data = _download(session, client.file_url(str(product["dataURI"])), options)
    if data is None:
        return DOWNLOAD_FAILED
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if options.grayscale_only and _is_colour(image):
                return COLOUR
            square = _centre_square(image)
    except OSError:
        return UNREADABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            square.save(fh, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return "downloaded"


def _download(session, url: str, options) -> bytes | None:
    """The body at ``url``, retrying connection errors and 5xx with exponential backoff."""
    for attempt in range(options.retries + 1):
        try:
            response = session.get(url, timeout=options.timeout)
            if response.status_code not in _RETRY_STATUS:
                return response.content if response.ok else None
        except (requests.ConnectionError, requests.Timeout):
            pass
        if attempt < options.retries:
            time.sleep(options.backoff * 2 ** attempt)
    return None


def _is_colour(image) -> bool:
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


def _centre_square(image, size: int = PREVIEW_SIZE):
    from PIL import Image

    if image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode in ("1", "I", "I;16", "F", "LA") else "RGB")
    side = min(image.size)
    left = (image.width - side) // 2
    top = (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.LANCZOS)


# -- rows, state and the table -----------------------------------------------------------
def _row(obs, product, proposal: Proposal, preview: str, client: MastClient) -> dict:
    row = {c: _text(obs, c) for c in _TEXT_COLUMNS}
    for c in _FLOAT_COLUMNS:
        value = obs[c] if c in obs.colnames and not np.ma.is_masked(obs[c]) else math.nan
        row[c] = float(value)
    for c in ("em_min", "em_max"):  # MAST gives nanometres, ObsCore metres
        row[c] = row[c] * 1e-9
    level = obs["calib_level"] if "calib_level" in obs.colnames else -1
    row["calib_level"] = -1 if np.ma.is_masked(level) else int(level)
    data_url = _text(obs, "dataURL")
    row.update(
        facility_name="HST", proposal_id=proposal.id,
        proposal_cycle=-1 if proposal.cycle is None else proposal.cycle,
        proposal_title=proposal.title, proposal_pi=proposal.pi,
        proposal_abstract=proposal.abstract,
        product_url=client.file_url(data_url) if data_url else "", preview=preview,
        preview_uri=str(product["dataURI"]),
    )
    return row


def _sampling(options: IngestOptions) -> dict:
    """The options that decide which previews a proposal contributes."""
    return {"per_proposal": options.per_proposal, "seed": options.seed,
            "grayscale_only": options.grayscale_only}


def _load_state(out: Path, sampling: dict) -> dict:
    """The state of earlier runs into ``out``; they must have sampled as this one does."""
    path = out / STATE_FILE
    if not path.is_file():
        return {"version": 1, "sampling": sampling, "proposals": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VoClipError(f"cannot read {path}: {exc}",
                          hint="delete it to start the ingest afresh") from exc
    if state.get("sampling") != sampling:
        raise VoClipError(
            f"{out} was ingested with other sampling options ({state.get('sampling')})",
            hint="re-run with those options, or ingest into a new --out directory")
    return state


def _save_state(out: Path, state: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=STATE_FILE, suffix=".partial")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, out / STATE_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_COLUMN_ORDER = ("dataproduct_type", "calib_level", "obs_collection", "obs_id", "target_name",
                 "s_ra", "s_dec", "s_region", "t_min", "t_max", "t_exptime", "em_min",
                 "em_max", "facility_name", "instrument_name", "proposal_id",
                 "proposal_cycle", "proposal_title", "proposal_pi", "proposal_abstract",
                 "filters", "product_url", "preview")


def _write_archive(out: Path, state: dict, options: IngestOptions) -> None:
    rows = [row for entry in state["proposals"].values() for row in entry["rows"]]
    if not rows:
        raise VoClipError("nothing to ingest: no selected proposal has a public preview")
    table = Table()
    for name in _COLUMN_ORDER:
        values = [row[name] for row in rows]
        if name in _FLOAT_COLUMNS:
            table[name] = np.array(values, dtype=np.float64)
        elif name in ("calib_level", "proposal_cycle"):
            table[name] = np.ma.masked_equal(np.array(values, dtype=np.int16), -1)
        else:
            table[name] = np.array(values, dtype=str)
    Archive.write(out, table, name=out.name, source=f"MAST ({options.mast_url})",
                  extra={"abstracts": str(options.abstracts), "seed": options.seed,
                         "per_proposal": options.per_proposal,
                         "grayscale_only": options.grayscale_only})

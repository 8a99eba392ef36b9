"""The search page at ``/``: plain-language search for people without TOPCAT.

The page is a thin client of the service's own standard interfaces: text searches are
ADQL sent to ``/tap/sync`` (the page shows the query so that users learn to run it in
TOPCAT), image searches are uploads to ``/search/image``. This blueprint only renders
the page and serves what the browser needs, all from this machine:

- the page's own CSS and ES modules (``service/static``);
- Aladin Lite, from the npm package installed by ``npm ci`` (``node_modules`` at the
  repository root, or ``$VO_CLIP_NODE_MODULES``): it is not copied into the repository,
  and when it is missing the page still works and says how to install it;
- a blank HiPS survey generated here, because Aladin Lite insists on a background survey
  and its default ones live on CDS servers: the page must make no non-local request.

A Content-Security-Policy on the page enforces the last point in the browser, and makes
a value from the service that slipped into markup inert.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.routing import BuildError

from vo_clip.errors import VoClipError

__all__ = ["aladin_dist", "bp", "content_security_policy", "node_modules_dir"]

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/assets",
               template_folder="templates")

#: The repository root: the parent of the ``service`` package directory.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The SAMP Web Profile hub (SAMP 1.3 §5), on the user's own machine.
SAMP_HUBS = ("http://localhost:21012", "http://127.0.0.1:21012")

#: The blank survey: order 3 is what Aladin Lite asks for at any field of view.
HIPS_ORDER = 3
HIPS_TILE = 64
HIPS_COLOUR = (22, 27, 38)

#: Values of form fields the page pre-fills from the query string (shareable searches).
PREFILL = ("q", "instrument", "from", "to", "ra", "dec", "radius", "top")


def node_modules_dir() -> Path:
    """Where ``npm ci`` put the packages: ``$VO_CLIP_NODE_MODULES`` or ``<repo>/node_modules``.

    Read on each request, so that a deployment (or a test) can point elsewhere without
    re-creating the application.
    """
    configured = os.environ.get("VO_CLIP_NODE_MODULES")
    return Path(configured) if configured else REPO_ROOT / "node_modules"


def aladin_dist() -> Path | None:
    """The ``dist`` directory of the aladin-lite package, or None when not installed."""
    dist = node_modules_dir() / "aladin-lite" / "dist"
    return dist if (dist / "aladin.js").is_file() else None


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy() -> str:
    """The page's CSP: everything from this origin, nothing from elsewhere.

    Each exception was found by removing it and watching Aladin Lite 3.8 fail:
    ``'wasm-unsafe-eval'`` (it compiles its WebAssembly core), ``connect-src data:`` (the
    core is inlined as a data: URL and fetched), ``connect-src blob:`` (the FITS bytes the
    page hands it), ``worker-src blob:`` (a worker it starts), ``img-src data:`` (its
    icons) and inline styles (it injects a <style> element and style attributes). The
    SAMP hub on localhost is the one other origin. A configured public ``base_url``
    (behind a proxy) names where previews and query results live.
    """
    own = " ".join(filter(None, ["'self'", _origin(_configured_base_url())]))
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {own} data:",
        f"connect-src {own} data: blob: {' '.join(SAMP_HUBS)}",
        "worker-src 'self' blob:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ])


def _configured_base_url() -> str | None:
    config = current_app.extensions.get("vo_clip.config")
    return getattr(config, "base_url", None) or None


def _url(endpoint: str, fallback: str, **values) -> str:
    """``url_for(endpoint)``, or the service-relative ``fallback`` when that blueprint is
    not registered (the page still renders in an app without TAP, e.g. in tests)."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return request.script_root + fallback


def _tap_url() -> str:
    """The TAP base URL users give TOPCAT."""
    base = _configured_base_url() or request.host_url.rstrip("/") + request.script_root
    return base.rstrip("/") + "/tap"


def _match_calibrated() -> bool:
    """Whether the TAP service offers vo_clip_match (False in an app without TAP, or
    while its index cannot be opened: the page then asks for the similarity alone)."""
    opened = current_app.extensions.get("vo_clip.tap")
    if opened is None:
        return False
    try:
        return opened().match_calibrated
    except VoClipError:
        return False


@bp.get("/")
def search_page():
    """The search page; query-string values pre-fill the form (escaped by Jinja)."""
    prefill = {name: request.args.get(name, "")[:2000] for name in PREFILL}
    aladin = aladin_dist()
    page = render_template(
        "web/index.html",
        prefill=prefill,
        tap_sync=_url("tap.sync", "/tap/sync"),
        tap_url=_tap_url(),
        image_search=request.script_root + "/search/image",
        products=request.script_root + "/products/",
        aladin_js=url_for("web.vendor", filename="aladin.js") if aladin else "",
        hips_url=url_for("web.hips_properties").removesuffix("/properties"),
        no_proxy=url_for("web.no_proxy"),
        match=_match_calibrated(),
    )
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/vendor/aladin-lite/<path:filename>")
def vendor(filename: str):
    """Files of the installed aladin-lite package (``send_from_directory`` refuses any
    path that escapes the directory)."""
    dist = aladin_dist()
    if dist is None:
        return Response("Aladin Lite is not installed: run `npm ci` at the repository root\n",
                        status=404, mimetype="text/plain")
    return send_from_directory(dist, filename, max_age=3600)


@bp.get("/vendor/aladin-lite-proxy")
def no_proxy():
    """What Aladin Lite gets instead of the CDS proxy it retries failed downloads through."""
    return Response("this page makes no request to other hosts\n", status=404,
                    mimetype="text/plain")


@bp.get("/hips/blank/properties")
def hips_properties():
    """The properties of the blank all-sky survey served below (HiPS 1.0 §4.4)."""
    text = "\n".join([
        "creator_did          = ivo://vo_clip/P/blank",
        "obs_title            = Blank sky (vo_clip: no survey images, offline)",
        "dataproduct_type     = image",
        "hips_version         = 1.4",
        "hips_release_date    = 2024-01-01T00:00Z",
        "hips_frame           = equatorial",
        f"hips_order           = {HIPS_ORDER}",
        "hips_order_min       = 0",
        f"hips_tile_width      = {HIPS_TILE}",
        "hips_tile_format     = png",
        "hips_initial_fov     = 180",
        "hips_initial_ra      = 0",
        "hips_initial_dec     = 0",
        "moc_sky_fraction     = 1",
        "",
    ])
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "max-age=86400"})


@bp.get("/hips/blank/Moc.fits")
def hips_moc():
    """The survey's coverage: the whole sky (Aladin Lite asks for it whatever
    ``moc_sky_fraction`` says)."""
    return Response(_full_sky_moc(), mimetype="application/fits",
                    headers={"Cache-Control": "max-age=86400"})


_TILE = re.compile(r"Norder(\d{1,2})/(?:Dir\d{1,7}/Npix\d{1,9}|Allsky)\.(png|jpg|jpeg)")


@bp.get("/hips/blank/<path:tile>")
def hips_tile(tile: str):
    """Any tile (or the Allsky image) of the blank survey: one uniform colour."""
    match = _TILE.fullmatch(tile.lstrip("/"))
    if not match or int(match.group(1)) > HIPS_ORDER:
        abort(404)
    order, kind = int(match.group(1)), "allsky" if "Allsky" in tile else "tile"
    fmt = "jpeg" if match.group(2) in ("jpg", "jpeg") else "png"
    data = _blank_image(kind, order if kind == "allsky" else 0, fmt)
    return Response(data, mimetype=f"image/{fmt}", headers={"Cache-Control": "max-age=86400"})


@functools.lru_cache(maxsize=16)
def _blank_image(kind: str, order: int, fmt: str) -> bytes:
    """A uniform image: a tile, or an Allsky mosaic of all tiles of ``order`` laid out as
    HiPS 1.0 §4.3.2 says (``12·4^order`` thumbnails of at most 64 pixels, in
    ``floor(sqrt(n))`` columns). Aladin Lite's WebAssembly core traps on a mosaic of
    another size, so the layout matters even when every pixel is the same."""
    from PIL import Image

    if kind == "tile":
        size = (HIPS_TILE, HIPS_TILE)
    else:
        tiles = 12 * 4 ** order
        columns = int(math.sqrt(tiles))
        rows = math.ceil(tiles / columns)
        thumb = min(HIPS_TILE, 64)
        size = (columns * thumb, rows * thumb)
    buffer = io.BytesIO()
    Image.new("RGB", size, HIPS_COLOUR).save(buffer, format=fmt.upper())
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _full_sky_moc() -> bytes:
    """A MOC 1.1 FITS file covering the sky: the 12 order-0 HEALPix cells (NUNIQ 4..15)."""
    import numpy as np
    from astropy.io import fits

    column = fits.Column(name="UNIQ", format="K", array=np.arange(4, 16, dtype=np.int64))
    table = fits.BinTableHDU.from_columns([column])
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "COORDSYS": "C",
                         "MOCORDER": 0, "MOCTOOL": "vo_clip", "MOCVERS": "1.1",
                         "MOCDIM": "SPACE"})
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


@bp.after_request
def _headers(response: Response) -> Response:
    """Modules must be served as JavaScript (RFC 9239), whatever the host's mime.types says."""
    if request.path.endswith((".js", ".mjs")) and response.status_code == 200:
        response.mimetype = "text/javascript"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response

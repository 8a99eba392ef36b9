"""From a TAP result to everything DataLink links to each observation.

    python examples/datalink_followup.py
    python examples/datalink_followup.py --text "comet" --rows 1 --out previews --url URL

You get, for the best-matching observations of a plain-language search: the list of
their DataLink links (DataLink 1.1: FITS product, preview, proposal page, and service
descriptors), their preview image downloaded to --out, and the answers of the
services the descriptors describe (#proc rows: the most similar observations, and the
descriptions that best match the preview), called through pyvo.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line
from astropy.table import Table

PREVIEW_TERMS = ("#preview-image", "#preview")  # the narrower DataLink term first
#: How the links are listed (pyvo's batched DataLink calls do not keep the service's order).
LINK_ORDER = ("#this", "#preview-image", "#preview", "#documentation", "#auxiliary", "#proc")
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/fits": ".fits",
              "application/fits": ".fits"}
#: Columns of the services' answers left out of the printed tables, to keep them narrow.
WIDE_COLUMNS = {"obs_publisher_did", "access_url", "preview_url", "s_region", "t_min",
                "proposal_title"}


def build_query(text: str, rows: int) -> str:
    # access_url and access_format make each row a DataLink pointer pyvo can follow.
    return f"""
        SELECT TOP {rows} obs_id, obs_publisher_did, target_name, access_url, access_format,
               vo_clip_similarity({adql_string(text)}) AS similarity
        FROM ivoa.ObsCore
        ORDER BY similarity DESC"""


def print_links(links) -> None:
    """One entry per link: its semantics, media type and target (a URL or a service)."""
    order = {term: rank for rank, term in enumerate(LINK_ORDER)}
    for link in sorted(links, key=lambda link: order.get(link.semantics, len(order))):
        if link.error_message:
            target = f"error: {link.error_message}"
        elif link.service_def:
            target = f"service_def={link.service_def} (calls {link.access_url})"
        else:
            target = link.access_url
        print(f"  {link.semantics:<15} {link.content_type or '':<17} {target}")
        print(f"  {'':<15} {link.description or ''}")


def download_preview(links, obs_id: str, out: Path) -> str:
    """Save the first #preview-image (or #preview) link; says where, or why not."""
    for term in PREVIEW_TERMS:
        for link in links:
            if link.semantics == term and link.access_url and not link.error_message:
                response = requests.get(link.access_url, timeout=60)
                response.raise_for_status()
                kind = response.headers.get("Content-Type", "").split(";")[0].strip()
                path = out / f"{obs_id}-preview{EXTENSIONS.get(kind, '.bin')}"
                path.write_bytes(response.content)
                return f"{term} saved to {path} ({len(response.content)} bytes, {kind})"
    return "no preview link"


def call_services(links) -> None:
    """Call every service descriptor (#proc row) with its default parameters."""
    for proc in links.iter_procs():
        name = proc.get("local_semantics", decode=True) or proc.service_def
        print(f"\n  {name}: {proc.description}")
        payload = proc.process().read()
        if b"<VOTABLE" not in payload[:1000]:  # not a table: show the start of the answer
            print("   ", payload[:200].decode("utf-8", "replace"))
            continue
        answer = Table.read(io.BytesIO(payload), format="votable")
        for column in answer.itercols():
            if column.dtype.kind == "f":
                column.info.format = ".3f"
        keep = [c for c in answer.colnames if c not in WIDE_COLUMNS]
        answer[keep].pprint(max_lines=-1, max_width=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--text", default="planetary nebula with a bright central star",
                        help="the search whose best rows are followed")
    parser.add_argument("--rows", type=int, default=2, help="rows to follow (default 2)")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="directory for the downloaded previews (default .)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL
    args.out.mkdir(parents=True, exist_ok=True)

    service = pyvo.dal.TAPService(url)
    try:
        results = service.search(build_query(args.text, args.rows))
        print(f"{len(results)} observations matching {args.text!r}")
        for links in results.iter_datalinks():
            row = links.original_row
            print(f"\n== {row['obs_id']} ({row['target_name']}), {row['obs_publisher_did']}")
            print_links(links)
            print("\n ", download_preview(links, row["obs_id"], args.out))
            call_services(links)
    except (pyvo.dal.DALAccessError, requests.RequestException, OSError) as error:
        print(f"datalink_followup: error: {one_line(error, url, 'service')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

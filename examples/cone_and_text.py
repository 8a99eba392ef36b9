"""Search a region of the sky and rank what is there by a plain-language description.

    python examples/cone_and_text.py 272.1 -28.8 5 "planetary nebula"
    python examples/cone_and_text.py 150.1 2.2 10 "galaxy cluster" --top 20 --url URL

You get the observations centred within RADIUS degrees of (RA, DEC) (ICRS), ranked by
how well their preview matches the text (ADQL `CONTAINS(POINT, CIRCLE)` with
`vo_clip_similarity`), with their distance from the centre in degrees.
"""

from __future__ import annotations

import argparse
import sys

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line


def build_query(ra: float, dec: float, radius: float, text: str, top: int) -> str:
    return f"""
        SELECT TOP {top} obs_id, target_name, instrument_name, s_ra, s_dec,
               DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {ra}, {dec})) AS dist,
               vo_clip_similarity({adql_string(text)}) AS similarity
        FROM ivoa.ObsCore
        WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, {radius}))
        ORDER BY similarity DESC"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ra", type=float, help="right ascension of the centre, degrees (ICRS)")
    parser.add_argument("dec", type=float, help="declination of the centre, degrees (ICRS)")
    parser.add_argument("radius", type=float, help="cone radius, degrees")
    parser.add_argument("text", help="what to look for, in plain language")
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--top", type=int, default=10, help="how many rows (default 10)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL

    service = pyvo.dal.TAPService(url)
    query = build_query(args.ra, args.dec, args.radius, args.text, args.top)
    try:
        table = service.search(query).to_table()
    except (pyvo.dal.DALAccessError, requests.RequestException) as error:
        print(f"cone_and_text: error: {one_line(error, url)}", file=sys.stderr)
        return 1
    table["similarity"].info.format = table["dist"].info.format = ".3f"
    print(f"{len(table)} observations within {args.radius} deg of ({args.ra}, {args.dec}),"
          f" ranked by {args.text!r}:")
    table.pprint(max_lines=-1, max_width=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

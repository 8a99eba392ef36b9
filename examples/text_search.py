"""Find Hubble observations by describing them in plain language, over TAP.

    python examples/text_search.py "planetary nebula with a bright central star"
    python examples/text_search.py "barred spiral galaxy" --instrument ACS --top 20
    python examples/text_search.py "comet" --url https://vo.example.org/tap

You get the observations whose preview best matches the sentence, best first, with
their target, instrument, position and cosine similarity (ADQL `vo_clip_similarity`).
"""

from __future__ import annotations

import argparse
import sys

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line


def build_query(text: str, top: int, instrument: str | None) -> str:
    where = f"WHERE instrument_name ILIKE {adql_string(instrument + '%')}" if instrument else ""
    return f"""
        SELECT TOP {top} obs_id, target_name, instrument_name, s_ra, s_dec,
               vo_clip_similarity({adql_string(text)}) AS similarity
        FROM ivoa.ObsCore
        {where}
        ORDER BY similarity DESC"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", help="what to look for, in plain language")
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--instrument",
                        help="instrument name prefix, any case, e.g. ACS or wfc3/ir")
    parser.add_argument("--top", type=int, default=10, help="how many rows (default 10)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL

    service = pyvo.dal.TAPService(url)
    try:
        table = service.search(build_query(args.text, args.top, args.instrument)).to_table()
    except (pyvo.dal.DALAccessError, requests.RequestException) as error:
        print(f"text_search: error: {one_line(error, url)}", file=sys.stderr)
        return 1
    table["similarity"].info.format = ".3f"
    print(f"{len(table)} observations matching {args.text!r}"
          + (f" with {args.instrument}" if args.instrument else "") + ":")
    table.pprint(max_lines=-1, max_width=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

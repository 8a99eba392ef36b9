"""More like this: the observations whose previews look most like a given one, over TAP.

    python examples/similar_to.py hst_12233_01_wfc3_uvis_f656n_i9ft01
    python examples/similar_to.py hst_12233_01_wfc3_uvis_f656n_i9ft01 --top 20 --url URL

You get the nearest observations to OBS_ID in the model's image space (ADQL
`vo_clip_similarity_to`), the observation itself left out, with their target,
instrument and the proposal that took them (a join with hst.observations).
"""

from __future__ import annotations

import argparse
import sys

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line


def build_query(obs_id: str, top: int) -> str:
    return f"""
        SELECT TOP {top} o.obs_id, o.target_name, o.instrument_name, h.proposal_id,
               vo_clip_similarity_to(o.obs_id, {adql_string(obs_id)}) AS similarity
        FROM ivoa.ObsCore AS o JOIN hst.observations AS h ON h.obs_id = o.obs_id
        WHERE o.obs_id <> {adql_string(obs_id)}
        ORDER BY similarity DESC"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("obs_id", help="the observation to start from (obs_id or its ivo:// DID)")
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--top", type=int, default=10, help="how many rows (default 10)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL

    service = pyvo.dal.TAPService(url)
    try:
        table = service.search(build_query(args.obs_id, args.top)).to_table()
    except (pyvo.dal.DALAccessError, requests.RequestException) as error:
        print(f"similar_to: error: {one_line(error, url)}", file=sys.stderr)
        return 1
    table["similarity"].info.format = ".3f"
    print(f"{len(table)} observations most like {args.obs_id}:")
    table.pprint(max_lines=-1, max_width=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

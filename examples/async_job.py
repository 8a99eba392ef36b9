"""Run a plain-language search as an asynchronous TAP job (UWS), step by step.

    python examples/async_job.py "strong gravitational lensing arcs"
    python examples/async_job.py "comet" --top 20 --url https://vo.example.org/tap

You see the job's life: created (PENDING), started, waited for (EXECUTING ->
COMPLETED), its result fetched and printed, then the job deleted from the service.
Async jobs suit long queries: the job survives a dropped connection, and its result
stays on the service (until deleted or destroyed) to be fetched again.
"""

from __future__ import annotations

import argparse
import sys

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line


def build_query(text: str, top: int) -> str:
    return f"""
        SELECT TOP {top} obs_id, target_name, instrument_name, t_exptime,
               vo_clip_similarity({adql_string(text)}) AS similarity
        FROM ivoa.ObsCore
        ORDER BY similarity DESC"""


def run_job(service: pyvo.dal.TAPService, query: str, timeout: float):
    """Submit, run, wait for, fetch and delete one job; prints each step."""
    job = service.submit_job(query)
    print(f"job created: {job.url}")
    print(f"  phase: {job.phase}")
    try:
        job.run()
        print(f"  started, phase: {job.phase}")
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=timeout)
        print(f"  finished, phase: {job.phase}")
        job.raise_if_error()
        print(f"  result: {job.result_uri}")
        return job.fetch_result().to_table()
    finally:
        job.delete()
        print("  job deleted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", help="what to look for, in plain language")
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--top", type=int, default=10, help="how many rows (default 10)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for the job (default 600)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL

    with requests.Session() as session:
        service = pyvo.dal.TAPService(url, session=session)
        try:
            table = run_job(service, build_query(args.text, args.top), args.timeout)
        except (pyvo.dal.DALAccessError, requests.RequestException) as error:
            print(f"async_job: error: {one_line(error, url)}", file=sys.stderr)
            return 1
    table["similarity"].info.format = ".3f"
    print(f"\n{len(table)} observations matching {args.text!r}:")
    table.pprint(max_lines=-1, max_width=-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

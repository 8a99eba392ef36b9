"""Search in plain language and send the result to TOPCAT or Aladin over SAMP.

    python examples/samp_send.py "spiral galaxy seen face-on"
    python examples/samp_send.py "globular cluster" --instrument ACS --to topcat --url URL
    python examples/samp_send.py "star-forming region" --cone 83.90 -5.54 0.1 --to Aladin

Start TOPCAT or Aladin first (each runs a SAMP hub when none is running). You get the
result printed here and loaded as a table in every SAMP application that accepts
VOTables (mtype table.load.votable), or only in --to NAME. The applications load the
table from the TAP service's sync URL themselves, so it arrives with all its column
metadata, and DataLink-aware tools can follow each row's links.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlencode

import pyvo
import requests
from _example import DEFAULT_URL, adql_string, one_line

try:  # pyvo >= 1.9 carries SAMP; astropy.samp is deprecated since astropy 8.0
    from pyvo.samp import SAMPHubError, SAMPIntegratedClient, SAMPProxyError
except ImportError:  # pragma: no cover - older pyvo
    from astropy.samp import SAMPHubError, SAMPIntegratedClient, SAMPProxyError

MTYPE = "table.load.votable"


def build_query(text: str, top: int, instrument: str | None,
                cone: tuple[float, float, float] | None) -> str:
    conditions = []
    if instrument:
        conditions.append(f"instrument_name ILIKE {adql_string(instrument + '%')}")
    if cone:
        conditions.append("1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', "
                          + ", ".join(str(value) for value in cone) + "))")
    where = ("WHERE " + " AND ".join(conditions) + " ") if conditions else ""
    return (f"SELECT TOP {top} obs_id, obs_publisher_did, target_name, instrument_name, "
            f"s_ra, s_dec, s_region, access_url, access_format, "
            f"vo_clip_similarity({adql_string(text)}) AS similarity "
            f"FROM ivoa.ObsCore {where}ORDER BY similarity DESC")


def sync_url(tap_url: str, query: str) -> str:
    """The TAP sync GET URL that returns the result as a VOTable."""
    return tap_url.rstrip("/") + "/sync?" + urlencode(
        {"REQUEST": "doQuery", "LANG": "ADQL", "RESPONSEFORMAT": "votable", "QUERY": query})


def send(table_url: str, name: str, to: str | None, timeout: int) -> list[str]:
    """Send ``table.load.votable`` to each SAMP client that takes it; their replies."""
    client = SAMPIntegratedClient(name="vo_clip example", callable=False,
                                  description="vo_clip examples/samp_send.py")
    try:
        client.connect()
    except SAMPHubError:
        raise RuntimeError("no SAMP hub is running: start TOPCAT or Aladin first") from None
    try:
        names = {cid: client.get_metadata(cid).get("samp.name", cid)
                 for cid in client.get_subscribed_clients(MTYPE)}
        targets = [cid for cid, n in names.items() if to is None or n.lower() == to.lower()]
        if not targets:
            wanted = f"named {to!r} " if to else ""
            raise RuntimeError(f"no SAMP application {wanted}accepts tables ({MTYPE}); "
                               f"those that do: {', '.join(names.values()) or 'none'}")
        message = {"samp.mtype": MTYPE,
                   "samp.params": {"url": table_url, "name": name, "table-id": name}}
        replies = []
        for cid in targets:
            try:
                reply = client.call_and_wait(cid, message, str(timeout))
            except SAMPProxyError:  # the table was delivered; the application is still busy
                replies.append(f"{names[cid]}: no reply within {timeout} s (it may still be "
                               "loading the table)")
                continue
            error = reply.get("samp.error", {}).get("samp.errortxt", "")
            replies.append(f"{names[cid]}: {reply.get('samp.status')} {error}".rstrip())
        return replies
    finally:
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", help="what to look for, in plain language")
    parser.add_argument("url_arg", nargs="?", metavar="URL", help="TAP base URL")
    parser.add_argument("--url", default=None, help=f"TAP base URL (default {DEFAULT_URL})")
    parser.add_argument("--instrument", help="instrument name prefix, any case, e.g. ACS")
    parser.add_argument("--cone", type=float, nargs=3, metavar=("RA", "DEC", "RADIUS"),
                        help="only observations centred in this cone (degrees, ICRS)")
    parser.add_argument("--top", type=int, default=50, help="how many rows (default 50)")
    parser.add_argument("--to", metavar="NAME", help="send only to this SAMP client, e.g. topcat")
    parser.add_argument("--timeout", type=int, default=10,
                        help="seconds to wait for each application's reply (default 10)")
    args = parser.parse_args(argv)
    url = args.url or args.url_arg or DEFAULT_URL

    query = build_query(args.text, args.top, args.instrument, args.cone)
    try:  # run it here first: a mistake is reported here, not in another program
        table = pyvo.dal.TAPService(url).search(query).to_table()
    except (pyvo.dal.DALAccessError, requests.RequestException) as error:
        print(f"samp_send: error: {one_line(error, url)}", file=sys.stderr)
        return 1
    table["similarity"].info.format = ".3f"
    table[["obs_id", "target_name", "instrument_name", "similarity"]].pprint(
        max_lines=12, max_width=-1)

    table_url = sync_url(url, query)
    try:
        replies = send(table_url, f"vo_clip: {args.text}", args.to, args.timeout)
    except (RuntimeError, SAMPProxyError, OSError) as error:
        print(f"samp_send: error: {one_line(error, url)}", file=sys.stderr)
        return 1
    print(f"sent {len(table)} rows ({table_url})")
    for reply in replies:
        print(f"  {reply}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Search the demo archive (or your own index) from Python, without a server.

    python examples/search_from_python.py "barred spiral galaxy" --top 5

Uses the same configuration as the command line (VO_CLIP_HOME, VO_CLIP_INDEX, ...);
on first use the demo archive and its index are built (about two minutes, once).
The pyvo/TAP examples arrive with the TAP service.
"""

import argparse

from vo_clip.config import Config
from vo_clip.search.catalog import SearchFilter
from vo_clip.search.engine import Query
from vo_clip.workspace import open_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", help="what to look for, in plain language")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--instrument", help="instrument prefix, e.g. ACS")
    args = parser.parse_args()

    engine = open_engine(Config.load(), notify=print)
    hits = engine.search(Query(text=args.text), top=args.top,
                         search_filter=SearchFilter(instrument=args.instrument))
    table = engine.table(hits, ["obs_id", "target_name", "instrument_name", "proposal_id"])
    for row in table:
        print(f"{row['similarity']:.3f}  {row['obs_id']:<40} {row['target_name']:<14} "
              f"{row['instrument_name']}")
    # More like the best hit: search by its preview's embedding.
    similar = engine.search(Query(like=str(table["obs_id"][0])), top=4)
    print("\nmore like", table["obs_id"][0], ":",
          ", ".join(engine.index.catalog.fetch(similar.rows[1:], ["obs_id"])["obs_id"]))


if __name__ == "__main__":
    main()

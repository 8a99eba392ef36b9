"""Example queries, published as a DALI examples document (DALI 1.1 §2.3).

TOPCAT lists these under "Service-provided" examples, taplint checks them (EXA stage),
and the README shows the same ones, so users learn the similarity functions from
queries that are known to run. The document is XHTML with RDFa: one ``div
typeof="example"`` per query, each with a ``name`` and exactly one ``query``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

__all__ = ["Example", "examples", "examples_xhtml"]


@dataclass(frozen=True)
class Example:
    """One example: an id (the URL fragment), a title, why one would run it, the ADQL."""

    id: str
    name: str
    description: str
    query: str
    tables: tuple[str, ...] = ("ivoa.ObsCore",)


def examples(obs_id: str = "OBS_ID", ra: float = 150.0, dec: float = 2.0, *,
             match: bool = True) -> list[Example]:
    """The examples, naming a real observation (and its position) of the served archive.

    ``match`` says the index has a match calibration, which ``vo_clip_match`` needs.
    """
    calibrated = [
        Example("likely-matches", "Likely matches, with one threshold for every query",
                "Keep the observations whose calibrated match probability passes a "
                "threshold: unlike the cosine, it reads the same from one query to the next.",
                "SELECT TOP 50 obs_id, target_name, instrument_name,\n"
                "       vo_clip_match('comets') AS p_match\nFROM ivoa.ObsCore\n"
                "WHERE vo_clip_match('comets') > 0.5\nORDER BY p_match DESC"),
    ] if match else []
    return [
        Example("text-search", "Observations that look like a description",
                "Rank observations by the cosine similarity of their preview to a "
                "natural-language description, restricted to one instrument.",
                "SELECT TOP 20 obs_id, target_name, instrument_name, s_ra, s_dec,\n"
                "       vo_clip_similarity('barred spiral galaxy with a star-forming ring')"
                " AS similarity\nFROM ivoa.ObsCore\nWHERE instrument_name LIKE 'ACS%'\n"
                "ORDER BY similarity DESC"),
        Example("more-like-this", "More like this observation",
                "Observations whose previews are closest to the preview of another one.",
                "SELECT TOP 10 obs_id, target_name, instrument_name,\n"
                f"       vo_clip_similarity_to('{obs_id}') AS similarity\n"
                "FROM ivoa.ObsCore\nORDER BY similarity DESC"),
        Example("cone-and-text", "A description within a region of the sky",
                "Combine a cone constraint (as TOPCAT writes it) with a similarity ranking.",
                "SELECT TOP 10 obs_id, target_name, s_ra, s_dec,\n"
                "       vo_clip_similarity('planetary nebula with a bright central star')"
                " AS similarity\nFROM ivoa.ObsCore\n"
                "WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), "
                f"CIRCLE('ICRS', {ra:.4f}, {dec:.4f}, 30))\nORDER BY similarity DESC"),
        Example("proposals-of-matches", "Matches with their proposals",
                "Join the HST table to see which programmes took the best matches; the "
                "explicit form of the function names the table it scores.",
                "SELECT TOP 10 o.obs_id, h.proposal_id, h.proposal_title,\n"
                "       vo_clip_similarity(o.obs_publisher_did, "
                "'gravitational lens arcs around a galaxy cluster') AS similarity\n"
                "FROM ivoa.ObsCore AS o JOIN hst.observations AS h USING (obs_id)\n"
                "ORDER BY similarity DESC", ("ivoa.ObsCore", "hst.observations")),
        Example("best-per-instrument", "The best match per instrument",
                "Aggregate similarity scores like any other column.",
                "SELECT instrument_name, COUNT(*) AS n,\n"
                "       MAX(vo_clip_similarity('globular cluster')) AS best\n"
                "FROM ivoa.ObsCore\nGROUP BY instrument_name\nORDER BY best DESC"),
        Example("busiest-proposals", "The proposals with the most observations",
                "The HST table on its own: proposals, their titles and abstracts.",
                "SELECT TOP 10 proposal_id, proposal_title, COUNT(*) AS n\n"
                "FROM hst.observations\nGROUP BY proposal_id, proposal_title\n"
                "ORDER BY n DESC", ("hst.observations",)),
        *calibrated,
    ]


def examples_xhtml(items: list[Example], *, title: str) -> bytes:
    """The DALI examples document for ``items``."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
             '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">\n'
             f"<head><meta charset=\"utf-8\"/><title>{escape(title)}: examples</title></head>\n"
             '<body vocab="http://www.ivoa.net/rdf/examples#">\n'
             f"<h1>{escape(title)}: example queries</h1>\n"]
    for item in items:
        tables = "".join(f'<span property="table">{escape(t)}</span> ' for t in item.tables)
        parts.append(
            f'<div typeof="example" id="{item.id}" resource="#{item.id}">\n'
            f'<h2 property="name">{escape(item.name)}</h2>\n'
            f"<p>{escape(item.description)} Tables: {tables}</p>\n"
            f'<pre property="query">{escape(item.query)}</pre>\n</div>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts).encode("utf-8")

"""The ranked query behind the service's own searches, written once.

"More like this" (``/datalink/similar``) and query by image (``/search/image``) answer
with the same columns, so a client, and the search page, read both alike; the search
page's JavaScript (``service/static/adql.js``) writes the same query for text searches.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["RESULT_COLUMNS", "adql_string", "ranked_adql"]

#: The columns of a ranked result, before ``similarity``.
RESULT_COLUMNS = ("o.obs_id", "o.obs_publisher_did", "o.target_name", "o.instrument_name",
                  "o.t_min", "o.s_ra", "o.s_dec", "o.s_region", "o.access_url",
                  "h.preview_url", "h.proposal_id", "h.proposal_title")


def adql_string(text: str) -> str:
    """``text`` as an ADQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def ranked_adql(similarity: str, top: int, where: Sequence[str] = ()) -> str:
    """``SELECT TOP top`` observations ordered by the ADQL expression ``similarity``."""
    condition = (" WHERE " + " AND ".join(where)) if where else ""
    return (f"SELECT TOP {int(top)} {', '.join(RESULT_COLUMNS)}, {similarity} AS similarity "
            "FROM ivoa.ObsCore AS o JOIN hst.observations AS h USING (obs_id)"
            f"{condition} ORDER BY similarity DESC")

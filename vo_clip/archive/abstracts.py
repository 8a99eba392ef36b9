"""Read the STScI Proposal Abstracts Catalog (``abstracts.cat``).

PAPERCLIP pairs each HST preview with the abstract of the proposal that took it; STScI
publishes those abstracts as one plain-text file, a record per proposal::

    Prop. Type: GO
    Category:   STAR FORMATION
    ID:         12345
    Cycle:      19
    Title:      A title that may continue
                on indented lines
    PI:         Jane Doe

    The abstract, one or more paragraphs.
    ------------------------------------------------------------------

Records are separated by a line of dashes, and a ``Prop. Type:`` line always starts a new
one, so a catalog without separators still parses. Old records may lack a cycle; it is
then ``None`` rather than a guess. The file is read from a path or an http(s) URL.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import VoClipError

__all__ = ["ABSTRACTS_URL", "Proposal", "load_abstracts", "parse_abstracts"]

#: Where STScI publishes the catalog.
ABSTRACTS_URL = "https://archive.stsci.edu/hst/abstracts.cat"

_FIELD = re.compile(r"^(Prop\. Type|Category|ID|Cycle|Title|PI)\s*:\s*(.*)$")
_SEPARATOR = re.compile(r"^\s*-{5,}\s*$")
_KEYS = {"Prop. Type": "type", "Category": "category", "ID": "id", "Cycle": "cycle",
         "Title": "title", "PI": "pi"}


@dataclass(frozen=True)
class Proposal:
    """One catalog record; ``cycle`` is ``None`` where the catalog gives none."""

    id: str
    cycle: int | None
    type: str
    category: str
    title: str
    pi: str
    abstract: str


def parse_abstracts(text: str) -> list[Proposal]:
    """Parse the text of an abstracts catalog into its records, in file order.

    Records without an ``ID`` are skipped (they cannot be matched to observations).
    """
    proposals = []
    for block in _blocks(text.splitlines()):
        proposal = _record(block)
        if proposal is not None:
            proposals.append(proposal)
    return proposals


def load_abstracts(source: str | os.PathLike, *, timeout: float = 60) -> dict[str, Proposal]:
    """Read the catalog at ``source`` (a path or an http(s) URL), keyed by proposal id.

    Raises
    ------
    VoClipError
        If the file cannot be read or downloaded.
    """
    source = str(source)
    if source.startswith(("http://", "https://")):
        text = _download_text(source, timeout)
    else:
        try:
            text = Path(source).expanduser().read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise VoClipError(f"cannot read the abstracts catalog {source}: {exc.strerror}")
    return {p.id: p for p in parse_abstracts(text)}


def _download_text(url: str, timeout: float) -> str:
    import requests

    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            response.raise_for_status()
            with tempfile.TemporaryFile() as tmp:
                for chunk in response.iter_content(1 << 16):
                    tmp.write(chunk)
                tmp.seek(0)
                return tmp.read().decode("utf-8", errors="replace")
    except requests.RequestException as exc:
        raise VoClipError(f"cannot download the abstracts catalog {url}: {exc}",
                          hint="pass a local copy with --abstracts FILE") from exc


def _blocks(lines: list[str]):
    block: list[str] = []
    for line in lines:
        if _SEPARATOR.match(line):
            if block:
                yield block
            block = []
            continue
        if line.startswith("Prop. Type") and any(_FIELD.match(b) for b in block):
            yield block
            block = []
        block.append(line.rstrip())
    if block:
        yield block


def _record(block: list[str]) -> Proposal | None:
    fields: dict[str, str] = {}
    last = None
    body_start = len(block)
    for i, line in enumerate(block):
        match = _FIELD.match(line)
        if match:
            last = _KEYS[match.group(1)]
            fields[last] = match.group(2).strip()
        elif last == "title" and line[:1].isspace() and line.strip():
            fields["title"] += " " + line.strip()
        elif fields and not line.strip() and "pi" in fields:
            body_start = i + 1
            break
        elif fields and line.strip():
            body_start = i
            break
    if not fields.get("id"):
        return None
    abstract = " ".join(" ".join(block[body_start:]).split())
    cycle = fields.get("cycle", "")
    return Proposal(
        id=fields["id"], cycle=int(cycle) if cycle.isdigit() else None,
        type=fields.get("type", ""), category=fields.get("category", ""),
        title=fields.get("title", ""), pi=fields.get("pi", ""), abstract=abstract,
    )

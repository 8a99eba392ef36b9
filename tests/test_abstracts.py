"""The STScI abstracts catalog parser, on a file in the catalog's own format."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from vo_clip.archive.abstracts import Proposal, load_abstracts, parse_abstracts
from vo_clip.errors import VoClipError

CATALOG = Path(__file__).parent / "data" / "abstracts" / "abstracts.cat"


def test_parses_every_record_in_order():
    proposals = parse_abstracts(CATALOG.read_text())
    assert [p.id for p in proposals] == ["12001", "12002", "5001", "13003", "13004"]
    first = proposals[0]
    assert first == Proposal(
        id="12001", cycle=20, type="GO", category="STELLAR POPULATIONS",
        title="Resolved Stellar Populations in the Outskirts of M31", pi="Jane Q. Observer",
        abstract=first.abstract,
    )
    assert first.abstract.startswith("We propose deep ACS/WFC imaging")
    assert first.abstract.endswith("assembly of the disk.")  # both paragraphs kept


def test_multi_line_title_is_joined():
    proposal = load_abstracts(CATALOG)["12002"]
    assert proposal.title == ("A Multi-Wavelength Census of Planetary Nebulae with Bright "
                              "Central Stars in the Galactic Bulge and the Magellanic Clouds")
    assert proposal.pi == "Ada Nebula"
    assert proposal.abstract == "Narrow-band WFC3/UVIS images of 40 planetary nebulae."


def test_missing_cycle_is_none():
    proposal = load_abstracts(CATALOG)["5001"]
    assert proposal.cycle is None
    assert proposal.type == "SNAP"
    assert proposal.title == "A Snapshot Survey of Nearby Spiral Galaxies"


def test_records_without_separators():
    text = CATALOG.read_text().replace("-" * 78 + "\n", "")
    assert [p.id for p in parse_abstracts(text)] == ["12001", "12002", "5001", "13003", "13004"]


def test_reads_from_a_url():
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(CATALOG.parent), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert len(load_abstracts(f"{url}/abstracts.cat")) == 5
        with pytest.raises(VoClipError, match="cannot download"):
            load_abstracts(f"{url}/missing.cat")
    finally:
        server.shutdown()
        server.server_close()


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(VoClipError, match="cannot read the abstracts catalog"):
        load_abstracts(tmp_path / "nope.cat")

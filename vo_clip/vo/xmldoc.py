"""What the hand-written VOTable and the ElementTree documents share about XML text.

ElementTree escapes markup but writes the characters XML 1.0 forbids (most C0
controls, lone surrogates, U+FFFE and U+FFFF) as they are, which leaves a document no
parser reads; a job parameter or an echoed argument can carry one. Every writer
replaces them with U+FFFD, and this is the one definition of the set.
"""

from __future__ import annotations

import re

__all__ = ["XML_FORBIDDEN", "xml_safe"]

#: The characters XML 1.0 (§2.2) cannot carry, as the body of a regex character class.
XML_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_FORBIDDEN = re.compile(f"[{XML_FORBIDDEN}]")


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids replaced by U+FFFD."""
    return _FORBIDDEN.sub("\ufffd", text)

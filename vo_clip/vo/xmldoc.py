"""XML text and elements as every vo_clip document writes them.

ElementTree escapes markup but writes the characters XML 1.0 forbids (most C0
controls, lone surrogates, U+FFFE and U+FFFF) as they are, which leaves a document no
parser reads; a job parameter or an echoed argument can carry one. Every writer
replaces them with U+FFFD: the hand-written VOTable with :data:`XML_FORBIDDEN` in its
escaper, the ElementTree documents (VOSI, OAI-PMH, Registry records, UWS) by building
their elements with :func:`sub` and writing them with :func:`serialize`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ["XML_FORBIDDEN", "serialize", "sub", "xml_safe"]

#: The characters XML 1.0 (§2.2) cannot carry, as the body of a regex character class.
XML_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_FORBIDDEN = re.compile(f"[{XML_FORBIDDEN}]")


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids replaced by U+FFFD."""
    return _FORBIDDEN.sub("\ufffd", text)


def sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
    """Append ``<tag attrs>str(text)</tag>`` to ``parent``, made safe for XML 1.0."""
    element = ET.SubElement(parent, tag, {name: xml_safe(value) for name, value in attrs.items()})
    if text is not None:
        element.text = xml_safe(str(text))
    return element


def serialize(root: ET.Element) -> bytes:
    """``root`` indented by one space, in UTF-8 after an XML declaration, ending in a newline.

    The tree is indented in place.
    """
    ET.indent(root, space=" ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")

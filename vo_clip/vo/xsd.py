"""Offline validation against the IVOA XML schemas (VOResource, VODataService, OAI-PMH...).

Registry records, VOSI documents and OAI-PMH responses are only useful if harvesters
and validators accept them, and they judge by the XSDs. The schema files are not
shipped with vo_clip and never fetched from the network: they come from Debian's
``python3-gavo`` (DaCHS 2.7), whose ``gavo/resources/schemata/`` holds VOResource 1.1,
VODataService 1.2, TAPRegExt 1.0, VORegistry 1.1, RegistryInterface 1.0, VOSI 1.1,
OAI-PMH 2.0 and oai_dc. Without installing DaCHS (it pulls in PostgreSQL)::

    apt-get download python3-gavo && dpkg -x python3-gavo_*.deb DIR
    export VO_CLIP_XSD_DIR=DIR/usr/lib/python3/dist-packages/gavo/resources/schemata

Validation follows vo-standards §15: an lxml parser with the network off, a resolver
that maps every ``schemaLocation`` URL to the local file of the same name, and one
driver schema importing every namespace, so any of these documents validates with one
:class:`IvoaSchemas`. lxml is imported only here, when validation is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..config import default_home
from ..errors import VoClipError

__all__ = ["SCHEMA_FILES", "XSD_DIR_VARIABLE", "IvoaSchemas", "find_schema_dir"]

#: The environment variable naming the folder of XSD files.
XSD_DIR_VARIABLE = "VO_CLIP_XSD_DIR"

#: The namespaces the driver schema imports, each from its file in python3-gavo.
SCHEMA_FILES = {
    "http://www.w3.org/XML/1998/namespace": "xml.xsd",
    "http://www.w3.org/1999/xlink": "xlink.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService.xsd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "TAPRegExt.xsd",
    "http://www.ivoa.net/xml/VORegistry/v1.0": "VORegistry.xsd",
    "http://www.ivoa.net/xml/RegistryInterface/v1.0": "RegistryInterface.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability.xsd",
    "http://www.ivoa.net/xml/VOSITables/v1.0": "VOSITables.xsd",
    "http://www.openarchives.org/OAI/2.0/": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "oai_dc.xsd",
}
#: Imported by the files above (STC by VODataService, Dublin Core by oai_dc).
_DEPENDENCIES = ("stc.xsd", "simpledc20021212.xsd")
_GAVO = Path("gavo/resources/schemata")
_DEBIAN_GAVO = Path("/usr/lib/python3/dist-packages") / _GAVO


def _complete(folder: Path) -> bool:
    needed = (*SCHEMA_FILES.values(), *_DEPENDENCIES)
    return all((folder / name).is_file() for name in needed)


def find_schema_dir(env: Mapping[str, str] = os.environ) -> Path | None:
    """The first folder holding every schema file, or None.

    Looks in ``$VO_CLIP_XSD_DIR`` (or its ``usr/lib/python3/dist-packages/gavo/...``
    subfolder, as ``dpkg -x`` leaves it), then ``HOME/xsd`` under vo_clip's default
    home, then an installed python3-gavo.

    Parameters
    ----------
    env : mapping, optional
        The environment to read.
    """
    candidates = []
    for root in (env.get(XSD_DIR_VARIABLE), default_home(env) / "xsd"):
        if root:
            root = Path(root).expanduser()
            candidates += [root, root / "usr/lib/python3/dist-packages" / _GAVO]
    candidates.append(_DEBIAN_GAVO)
    return next((folder for folder in candidates if _complete(folder)), None)


class IvoaSchemas:
    """The IVOA and OAI-PMH schemas, loaded once, validating any document they define.

    Parameters
    ----------
    folder : path-like, optional
        The XSD files; default :func:`find_schema_dir`.

    Raises
    ------
    VoClipError
        If no folder holds the schema files.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        from lxml import etree

        found = Path(folder) if folder else find_schema_dir()
        if found is None or not _complete(found):
            raise VoClipError("the IVOA XML schemas are not on this machine",
                              hint="apt-get download python3-gavo && dpkg -x "
                                   "python3-gavo_*.deb DIR, then set VO_CLIP_XSD_DIR=DIR")
        self.folder = found.resolve()
        self._etree = etree
        self._schema = etree.XMLSchema(self._driver())

    def _driver(self):
        etree, folder = self._etree, self.folder

        class LocalFiles(etree.Resolver):
            """Any schemaLocation URL to the local file of the same name."""

            def resolve(self, url, pubid, context):
                name = url.rstrip("/").rsplit("/", 1)[-1]
                if (folder / name).is_file():
                    return self.resolve_filename(str(folder / name), context)
                return None

        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(LocalFiles())
        driver = etree.Element("{http://www.w3.org/2001/XMLSchema}schema")
        for namespace, name in SCHEMA_FILES.items():
            etree.SubElement(driver, "{http://www.w3.org/2001/XMLSchema}import",
                             namespace=namespace, schemaLocation=(folder / name).as_uri())
        return etree.fromstring(etree.tostring(driver), parser,
                                base_url=(folder / "driver.xsd").as_uri())

    def errors(self, document: bytes) -> list[str]:
        """The schema errors of ``document`` (empty when it is valid).

        Parameters
        ----------
        document : bytes
            An XML document whose root element one of the schemas defines.

        Returns
        -------
        list of str
            ``line N: message`` for each error; a document that is not well-formed
            XML gives one error.
        """
        etree = self._etree
        try:
            tree = etree.fromstring(document, etree.XMLParser(no_network=True,
                                                              resolve_entities=False))
        except etree.XMLSyntaxError as exc:
            return [f"not well-formed XML: {exc}"]
        if self._schema.validate(tree):
            return []
        return [f"line {e.line}: {e.message}" for e in self._schema.error_log]

"""The columns of an archive's observations table, written once.

ObsCore 1.1 (IVOA REC-ObsCore-v1.1, table 6) fixes the names, types, units, UCDs and
utypes of the ``ivoa.ObsCore`` columns; the HST extras carry what PAPERCLIP trains on
(the proposal, its abstract and its summary) and where the preview lives. The archive
writer, the catalog database, TAP_SCHEMA and VOSI tables all read these definitions, so
a unit or a UCD is never spelled twice.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HST_COLUMNS",
    "OBSCORE_COLUMNS",
    "REQUIRED_COLUMNS",
    "ColumnDef",
    "all_columns",
]


@dataclass(frozen=True)
class ColumnDef:
    """One column: its VOTable datatype and its description as TAP_SCHEMA would give it.

    ``datatype`` uses VOTable names (``char``, ``short``, ``int``, ``long``, ``double``);
    ``unit`` is ``None`` where the standard shows none (validators compare units exactly).
    """

    name: str
    datatype: str
    description: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    std: bool = True
    principal: bool = True

    @property
    def arraysize(self) -> str | None:
        return "*" if self.datatype in ("char", "unicodeChar") else None

    @property
    def numpy_kind(self) -> str:
        """The numpy dtype kind an archive table stores this column as."""
        return {
            "char": "U",
            "unicodeChar": "U",
            "short": "i",
            "int": "i",
            "long": "i",
            "float": "f",
            "double": "f",
            "boolean": "b",
        }[self.datatype]


def _oc(name, datatype, unit, ucd, utype, description, xtype=None):
    return ColumnDef(
        name=name,
        datatype=datatype,
        description=description,
        unit=unit,
        ucd=ucd,
        utype=f"obscore:{utype}",
        xtype=xtype,
    )


_AX = "Char.SpatialAxis"
_TX = "Char.TimeAxis"
_EX = "Char.SpectralAxis"

OBSCORE_COLUMNS: tuple[ColumnDef, ...] = (
    _oc("dataproduct_type", "char", None, "meta.code.class",
        "ObsDataset.dataProductType", "Data product type: image, cube, spectrum, ..."),
    _oc("calib_level", "short", None, "meta.code;obs.calib",
        "ObsDataset.calibLevel", "Calibration level: 0 raw to 4 analysis product"),
    _oc("obs_collection", "char", None, "meta.id",
        "DataID.collection", "Name of the data collection"),
    _oc("obs_id", "char", None, "meta.id",
        "DataID.observationID", "Observation identifier"),
    _oc("obs_publisher_did", "char", None, "meta.ref.ivoid",
        "Curation.publisherDID", "Publisher's IVOA dataset identifier"),
    _oc("access_url", "char", None, "meta.ref.url",
        "Access.reference", "URL of the DataLink document for this observation"),
    _oc("access_format", "char", None, "meta.code.mime",
        "Access.format", "Content type of access_url"),
    _oc("access_estsize", "long", "kbyte", "phys.size;meta.file",
        "Access.size", "Estimated size of the science product"),
    _oc("target_name", "char", None, "meta.id;src",
        "Target.name", "Name of the observed target"),
    _oc("s_ra", "double", "deg", "pos.eq.ra",
        f"{_AX}.Coverage.Location.Coord.Position2D.Value2.C1",
        "Right ascension of the field centre (ICRS)"),
    _oc("s_dec", "double", "deg", "pos.eq.dec",
        f"{_AX}.Coverage.Location.Coord.Position2D.Value2.C2",
        "Declination of the field centre (ICRS)"),
    _oc("s_fov", "double", "deg", "phys.angSize;instr.fov",
        f"{_AX}.Coverage.Bounds.Extent.diameter", "Diameter of the field of view"),
    _oc("s_region", "char", None, "pos.outline;obs.field",
        f"{_AX}.Coverage.Support.Area", "Footprint as an STC-S polygon", xtype="adql:REGION"),
    _oc("s_resolution", "double", "arcsec", "pos.angResolution",
        f"{_AX}.Resolution.Refval.value", "Spatial resolution (PSF FWHM)"),
    _oc("s_xel1", "long", None, "meta.number",
        f"{_AX}.numBins1", "Number of pixels along the first axis"),
    _oc("s_xel2", "long", None, "meta.number",
        f"{_AX}.numBins2", "Number of pixels along the second axis"),
    _oc("t_min", "double", "d", "time.start;obs.exposure",
        f"{_TX}.Coverage.Bounds.Limits.StartTime", "Start time (MJD)"),
    _oc("t_max", "double", "d", "time.end;obs.exposure",
        f"{_TX}.Coverage.Bounds.Limits.StopTime", "Stop time (MJD)"),
    _oc("t_exptime", "double", "s", "time.duration;obs.exposure",
        f"{_TX}.Coverage.Support.Extent", "Total exposure time"),
    _oc("t_resolution", "double", "s", "time.resolution",
        f"{_TX}.Resolution.Refval.value", "Time resolution"),
    _oc("t_xel", "long", None, "meta.number",
        f"{_TX}.numBins", "Number of time samples"),
    _oc("em_min", "double", "m", "em.wl;stat.min",
        f"{_EX}.Coverage.Bounds.Limits.LoLimit", "Shortest wavelength observed"),
    _oc("em_max", "double", "m", "em.wl;stat.max",
        f"{_EX}.Coverage.Bounds.Limits.HiLimit", "Longest wavelength observed"),
    _oc("em_res_power", "double", None, "spect.resolution",
        f"{_EX}.Resolution.ResolPower.refVal", "Spectral resolving power"),
    _oc("em_xel", "long", None, "meta.number",
        f"{_EX}.numBins", "Number of spectral samples"),
    _oc("o_ucd", "char", None, "meta.ucd",
        "Char.ObservableAxis.ucd", "UCD of the observable"),
    _oc("pol_states", "char", None, "meta.code;phys.polarization",
        "Char.PolarizationAxis.stateList", "Polarization states observed"),
    _oc("pol_xel", "long", None, "meta.number",
        "Char.PolarizationAxis.numBins", "Number of polarization samples"),
    _oc("facility_name", "char", None, "meta.id;instr.tel",
        "Provenance.ObsConfig.Facility.name", "Telescope"),
    _oc("instrument_name", "char", None, "meta.id;instr",
        "Provenance.ObsConfig.Instrument.name", "Instrument (and detector)"),
)


def _hst(name, datatype, description, unit=None, ucd=None):
    return ColumnDef(name=name, datatype=datatype, description=description,
                     unit=unit, ucd=ucd, std=False)


HST_COLUMNS: tuple[ColumnDef, ...] = (
    _hst("proposal_id", "char", "HST proposal (programme) identifier", ucd="meta.id;obs.proposal"),
    _hst("proposal_cycle", "short", "HST observing cycle of the proposal",
         ucd="meta.id;obs.proposal"),
    _hst("proposal_title", "char", "Title of the proposal", ucd="meta.title;obs.proposal"),
    _hst("proposal_pi", "char", "Principal investigator of the proposal", ucd="meta.id.PI"),
    _hst("proposal_abstract", "unicodeChar", "Abstract of the proposal", ucd="meta.abstract"),
    _hst("summary_objects", "unicodeChar",
         "Objects and phenomena named in the proposal summary, '; '-separated", ucd="meta.note"),
    _hst("summary_use_cases", "unicodeChar",
         "Science use cases named in the proposal summary, '; '-separated", ucd="meta.note"),
    _hst("filters", "char", "Filter(s) used", ucd="instr.filter"),
    _hst("product_url", "char",
         "Where the science product is published (e.g. MAST); NULL when the service makes it",
         ucd="meta.ref.url;meta.file"),
    _hst("preview", "char", "Path of the preview image, relative to the archive directory",
         ucd="meta.ref;meta.preview"),
)

#: Columns an archive cannot do without: identity and the image to embed.
REQUIRED_COLUMNS: tuple[str, ...] = ("obs_id", "preview")


def all_columns() -> tuple[ColumnDef, ...]:
    """ObsCore columns followed by the HST extras, in table order."""
    return OBSCORE_COLUMNS + HST_COLUMNS

"""What goes in: an archive directory of preview images and one observations table."""

from .archive import Archive
from .columns import HST_COLUMNS, OBSCORE_COLUMNS, ColumnDef, all_columns

__all__ = ["HST_COLUMNS", "OBSCORE_COLUMNS", "Archive", "ColumnDef", "all_columns"]

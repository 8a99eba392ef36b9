"""The model layer: the only part of vo_clip that imports torch and open_clip."""

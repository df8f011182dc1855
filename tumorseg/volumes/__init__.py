"""Volumes: CT volumes read whole and meaningful, or refused, and written back (SimpleITK, pydicom).

headers (format by name, header, size limits), integrity (every voxel the header announces, intact and finite),
dicom (the grid a series' tags establish), orientation (the canonical slice order, slices as the model reads them,
masks back on the input's grid), io (read and write), tasks (MSD / nnU-Net task folders), phantom (the 3D phantom).
May import: files, data, tumorseg.errors.
"""

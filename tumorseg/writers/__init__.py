"""Writers: what predict and evaluate leave for a person. Overlays and grids (pictures), the viewer page (viewer),
DICOM SEG (dicom_seg), predict's outputs for CT volumes (volume_outputs), compare's report (comparison_report) and a
progress bar (progress); every file through files.output_files.
May import: every stage below training (files, data, volumes, models, inference, scoring), tumorseg.errors.
"""

"""Scoring: figures of predicted masks against the truth. Slice metrics pooled, per slice, per subject (metrics, a
torchmetrics Metric that training logs too), 3D figures per case (volume_metrics), and which volumes are scored
against which labels, with the labels checked for meaning (cases); evaluate's result (result, slice_scores); two
methods' recorded results read back (recorded), paired by fold and subject (comparison) and decided by a rule written
before them (decision_rule).
May import: files, data, volumes, models, inference, tumorseg.errors.
"""

"""Scoring: figures of predicted masks against the truth. Slice metrics pooled, per slice, per subject (metrics, a
torchmetrics Metric that training logs too), 3D figures per case (volume_metrics), and which volumes are scored
against which labels, with the labels checked for meaning (cases).
May import: files, data, volumes, models, inference, tumorseg.errors.
"""

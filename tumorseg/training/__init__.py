"""Training: the LightningModule (module), losses, augmentation on the training device (device_augment), callbacks
(pictures and EMA: callbacks; a checkpoint on interrupt and a stop on a non-finite loss: guards) and a run's plots.
May import: every stage below it (files, data, volumes, models, inference, scoring, writers), tumorseg.errors.
"""

"""Inference: a model file to masks. The model-file format (model_file), where and in what arithmetic it runs
(runtime, hardware; autotune: runtime=auto's measured choice), the ONNX export (onnx_export), test-time
augmentation (tta), post-processing (postprocess), a command's inputs as subjects (sources), the one segmentation
path (segment) and a volume through it (volume_segment).
May import: files, data, volumes, models, tumorseg.errors.
"""

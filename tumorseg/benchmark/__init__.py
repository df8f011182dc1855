"""Measuring this machine's speed, for `tumorseg bench`: training (Lightning and a plain loop, FLOP efficiency,
peak memory), the data pipeline, inference of the default net, the shipped model through the segmentation path,
CT volumes through predict's path, and the report of it all (Markdown table, JSON, targets).

It may import the library's stages (data, models, module, runtime, segment, volumes, ...), never a command. Nothing
here holds state between calls: every measurement takes its settings (`BenchSettings`, frozen) as an argument.

    settings.py   BenchSettings: the options of conf/bench.yaml, checked, and the counts they imply
    configs.py    the training config a figure is taken with; the numeric settings (layout, bf16, compile)
    timing.py     what every timer shares: waiting for the device, autocast, images per second of a call
    machine.py    what the figures were measured on, and its matmul peak
    data.py       the data pipeline: the loaders of the phantom set, images/s per augmentation
    training.py   training images/s through Lightning and a plain loop; GFLOP per image
    memory.py     peak memory of the default training
    inference.py  images/s and latency of the default net, each way of running it
    segment.py    slices/s of the shipped model through evaluate/predict's path, each runtime
    volume.py     slices/s of a CT volume through predict's path
    measure.py    every figure of the requested parts, in one run
    summary.py    the headline ratios and the targets they are held to
    report.py     the Markdown table and the JSON of a run, and their file names
"""

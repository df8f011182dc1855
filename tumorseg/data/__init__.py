"""Data: layout, split rules, cached datasets, the phantom generator and the data module."""

from tumorseg.data.datamodule import SegDataModule
from tumorseg.data.layout import Sample, find_pairs
from tumorseg.data.phantom import generate_phantom
from tumorseg.data.splits import split_indices

__all__ = ["SegDataModule", "Sample", "find_pairs", "generate_phantom", "split_indices"]

"""Posed-image captures: NeRF-synthetic, instant-ngp / nerfstudio, LLFF, COLMAP and IDR/NeuS formats."""

from nerfgen.data.dataset import Dataset, load_dataset
from nerfgen.data.errors import DatasetError, DatasetWarning
from nerfgen.data.layout import Layout, scene_layout

__all__ = ["Dataset", "DatasetError", "DatasetWarning", "Layout", "load_dataset", "scene_layout"]

"""Posed-image captures: NeRF-synthetic, instant-ngp / nerfstudio, LLFF, COLMAP and IDR/NeuS formats."""

from nerfgen.data.dataset import Dataset, load_dataset
from nerfgen.data.errors import DatasetError, DatasetWarning
from nerfgen.data.formats import FORMATS, choose_format
from nerfgen.data.layout import Layout, scene_layout

__all__ = ["FORMATS", "Dataset", "DatasetError", "DatasetWarning", "Layout", "choose_format", "load_dataset",
           "scene_layout"]

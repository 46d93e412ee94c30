"""Posed-image datasets: NeRF-synthetic (Blender) and instant-ngp / nerfstudio formats."""

from nerfgen.data.dataset import Dataset, load_dataset
from nerfgen.data.errors import DatasetError, DatasetWarning
from nerfgen.data.layout import Layout, scene_layout

__all__ = ["Dataset", "DatasetError", "DatasetWarning", "Layout", "load_dataset", "scene_layout"]

"""Posed-image datasets: NeRF-synthetic (Blender) and instant-ngp / nerfstudio formats."""

from nerfgen.data.dataset import Dataset, load_dataset
from nerfgen.data.errors import DatasetError, DatasetWarning

__all__ = ["Dataset", "DatasetError", "DatasetWarning", "load_dataset"]

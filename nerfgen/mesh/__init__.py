"""Meshes from trained fields: extraction (marching cubes on the density) and ray casting."""

from nerfgen.mesh.extract import Extracted, MeshOptions, extract_mesh
from nerfgen.mesh.raycast import MeshCaster, MeshImage

__all__ = ["Extracted", "MeshCaster", "MeshImage", "MeshOptions", "extract_mesh"]

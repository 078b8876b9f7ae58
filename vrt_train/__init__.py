"""VRT training on RGB + spike voxel caches."""

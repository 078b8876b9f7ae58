"""The voxel cache: its format, manifest, reader, builder and checks.

=================  ======================================================================================
module             holds
=================  ======================================================================================
records            the directory's file names and the record bytes (header, keys, checksum)
manifest           the manifest as typed data: SequenceEntry, SpikeStats, Manifest; load and write
manifest_params    its params: CacheParams, ReprSpec, RegistrationParams, the params hash
manifest_fields    the dataclass <-> JSON machinery and field validators both use
plan               planning a build: params, shapes, split, shard per sequence
frames             one frame's records from the sources (pure; shared by build and verify)
registered         registered rigs: the crop across sequences, the warps of RGB and spikes
journal            the build journal progress.jsonl
build              voxelize_dataset: the build (uses spikeprep.lmdb_writer)
parts              voxelize --part I/N: splitting the plan, building one part
parts_completion   the completion of a partitioned build: part states, the merge
lock               taking and releasing the write lock
lock_holders       who holds it: lock files, LockHolder, liveness, writers_note
runner             how frames are computed: RunOptions, FrameRunner (in-process or worker processes)
ordered            in_order: bounded, in-order results over an executor's futures (runner, dask_backend)
reader             open_cache / Cache: reading records
verify             verify_cache: completeness, checksums, statistics, meta_info.txt
verify_data        verify --data: equality with the sources
verify_report      Problem and VerifyReport
info               cache_info: what a cache holds
stats              mergeable per-channel statistics of the voxels
repr_specs         several representations: parsing --repr KIND[:N], their ReprSpecs and statistics
add_repr           add_representation: voxelize --add-repr, one representation more in a finished cache
=================  ======================================================================================

This package's ``__init__`` imports only the reading side; ``spikeprep.cache.build`` is imported
where a build is started.
"""

from .manifest import Manifest, SequenceEntry, SpikeStats, load_manifest
from .manifest_params import CacheParams
from .reader import Cache, Sample, open_cache
from .records import MANIFEST_NAME

__all__ = ["Cache", "CacheParams", "MANIFEST_NAME", "Manifest", "Sample", "SequenceEntry",
           "SpikeStats", "load_manifest", "open_cache"]

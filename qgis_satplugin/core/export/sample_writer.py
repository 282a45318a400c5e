"""What every format's writer is: ``write`` where the samples are cut, ``absorb`` and ``close`` where the dataset is finished.

An export hands each chunk of samples to a writer made with :meth:`SampleWriter.for_task`
(in the engine's writer thread, or on a Dask worker), which writes only those samples'
own files and returns, through :meth:`take_extras`, whatever the dataset-wide files need
from them. The engine process makes one writer with :meth:`create` before any chunk, gives it
every chunk's extras in plan order (:meth:`absorb`) and closes it last. Formats with one
file per sample need none of this; zarr's store is created once and its small per-sample
arrays are written at the end.

Each file is written under a temporary name and renamed (:func:`~..atomic.replaced`): a task
rerun after its worker died, or two attempts of one task, never leave a torn file.
"""
from __future__ import annotations

from pathlib import Path

from .sample import DatasetMeta, Sample


class SampleWriter:
    def __init__(self, root: Path, meta: DatasetMeta):
        self.root = Path(root)
        self.meta = meta

    @classmethod
    def create(cls, root: Path, meta: DatasetMeta) -> "SampleWriter":
        """The dataset's writer, in the engine process, before any sample is written."""
        return cls(root, meta)

    @classmethod
    def for_task(cls, root: Path, meta: DatasetMeta) -> "SampleWriter":
        """A writer for one chunk of samples, wherever they are cut."""
        return cls(root, meta)

    def write(self, sample: Sample) -> str:
        """Write the sample's files; return its path, relative to the dataset folder."""
        raise NotImplementedError

    def take_extras(self) -> list:
        """What the dataset writer needs from the samples written so far (plain values), once."""
        return []

    def absorb(self, extras: list) -> None:
        """Take one chunk's extras (chunks come in plan order)."""

    def close(self) -> None:
        """Write the dataset-wide files, after every chunk."""


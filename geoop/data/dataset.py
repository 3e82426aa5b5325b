"""`SimulationDataset`: a dataset folder as a torch dataset of PyG `Data`, one per sample, ready for
variable-size batching with `torch_geometric.loader.DataLoader`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from geoop.data.pyg import Data

from geoop.data.families import FAMILIES, get_family
from geoop.data.features import EXTENSION_REACH, InputLayout, sample_features
from geoop.data.potential_flow import field_specs, potential_flow_fields
from geoop.data.manifest import read_manifest
from geoop.errors import FieldError, GeoopError, MissingFileError
from geoop.geometry.geometry import Geometry
from geoop.io import load
from geoop.metrics.forces import ForceSpec


class SimulationDataset(torch.utils.data.Dataset):
    """Samples of a geoop dataset folder as PyG `Data`.

    Each item has:
        pos `(N, d)`; x `(N, C_in)` the input fields (laid out as `layout` says: a masked field is zero off its
        mask, followed by its 0/1 mask channel and its extension inward); y `(N, C_out)` the targets; y_mask
        `(N, C_out)` bool, where targets are defined; target_weight `(N, C_out)` the weights that integrate
        each target where it is defined; weight `(N,)` quadrature weights; boundary_weight `(N,)` boundary
        measure weights; boundary `(N,)` bool; normal `(N, d)` (zero where undefined);
        globals `(1, 2 + 3d)` geometry descriptors; index, the sample id. Floats are float32.

    Args:
        root: dataset folder (with manifest.json). split: "train", "val", "test" or "all".
        inputs, targets: field names (default: the manifest's). subsample: keep this many random points per
        item (a new draw each epoch, see `set_epoch`). cache: keep loaded samples in memory (up to
        `cache_bytes`). extension: how far masked inputs are carried inward (0: not at all; see
        `InputLayout`). body: the 0/1 point field of a body inside the domain, whose nodes alone are boundary
        (see `sample_features`); "auto": the dataset's (its manifest's, or its family's), None: none.
        potential_flow: the name of a free-stream input: adds the inviscid flow around the body (the panel
        method in 2D, linear finite elements in 3D; see `potential_flow_fields`) as the inputs u_potential,
        p_potential and cp_potential, and (2D) with the kinematic `viscosity` the flat-plate skin friction
        under it, cf_potential.
    """

    def __init__(self, root: str | Path, split: str = "train", inputs: list[str] | None = None,
                 targets: list[str] | None = None, subsample: int | None = None, cache: bool = True,
                 cache_bytes: float = 2e9, seed: int = 0, extension: float = EXTENSION_REACH,
                 body: str | None = "auto", potential_flow: str | None = None, viscosity: float | None = None):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        fields = self.manifest.fields
        self.inputs = list(fields["inputs"]) if inputs is None else list(inputs)
        self.targets = list(fields["targets"]) if targets is None else list(targets)
        self.specs = self.manifest.specs
        self.potential_flow, self.viscosity = potential_flow, viscosity
        if potential_flow is not None:
            derived = field_specs(self.manifest.dim, friction=viscosity is not None)
            self.specs.update(derived)
            self.inputs += [f for f in derived if f not in self.inputs]
        unknown = [f for f in self.inputs + self.targets if f not in self.specs]
        if unknown:
            raise FieldError(f"fields {unknown} are not in this dataset (it has {sorted(self.specs)})",
                             path=self.root / "manifest.json")
        if split == "all":
            ids = sorted(self.manifest.files)
        elif split in self.manifest.splits:
            ids = self.manifest.splits[split]
        else:
            raise GeoopError(f"no split {split!r}", path=self.root,
                             fix=f"use one of {sorted(self.manifest.splits)} or 'all'")
        files = self.manifest.files
        self.ids, self.split = list(ids), split
        self.files = [self.root / files[i] for i in self.ids]
        self.subsample, self.seed, self.epoch, self.extension = subsample, seed, 0, extension
        self.body = self._family_setting("body") if body == "auto" else body
        if potential_flow is not None and self.body is None:
            raise GeoopError("data.potential_flow needs the body the flow goes around", path=self.root,
                             fix="set data.body to the 0/1 point field of the body's nodes")
        self.cache, self.cache_bytes, self._cache, self._cached_bytes = cache, cache_bytes, {}, 0

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        """Draw new point subsets (when `subsample` is set) for this epoch."""
        self.epoch = epoch

    @property
    def layout(self) -> InputLayout:
        """Where each input field sits in the items' x."""
        return InputLayout(tuple(self.inputs), self.specs, self.extension)

    def _family_setting(self, key: str):
        """The manifest's `key`, or for datasets made before manifests recorded it, the family's."""
        recorded = getattr(self.manifest, key)
        if recorded is not None or self.manifest.family not in FAMILIES:
            return recorded
        value = getattr(get_family(self.manifest.family), key)
        return value.to_dict() if hasattr(value, "to_dict") else value

    @property
    def forces(self) -> ForceSpec | None:
        """How the force coefficients of a sample's body follow from its fields (the manifest's `forces`, or
        its family's for datasets made before manifests recorded it); None when the dataset has no body or
        this dataset's targets do not include the fields they need."""
        spec = self._family_setting("forces")
        if spec is None:
            return None
        spec = ForceSpec.from_dict(spec)
        return spec if set(spec.fields_needed()) <= set(self.targets) else None

    @property
    def input_channels(self) -> int:
        return self.layout.channels

    @property
    def target_channels(self) -> int:
        return sum(self.specs[f]["components"] for f in self.targets)

    def geometry(self, i: int) -> Geometry:
        """Sample i as a `Geometry` with all its fields and parameters."""
        path = self.files[i]
        if not path.is_file():
            raise MissingFileError("sample file missing", path=path,
                                   fix="rerun the `geoop data make` command that made this dataset: it resumes")
        return load(path)

    def _build(self, i: int) -> Data:
        geometry = self.geometry(i)
        if self.potential_flow is not None:
            geometry = geometry.with_point_data(**potential_flow_fields(geometry, self.body, self.potential_flow,
                                                                        self.viscosity))
        data = sample_features(geometry, self.inputs, self.specs, self.targets, path=self.files[i],
                               extension=self.extension, body=self.body)
        data.index = torch.tensor([self.ids[i]])
        return data

    def __getitem__(self, i: int) -> Data:
        data = self._cache.get(i)
        if data is None:
            data = self._build(i)
            size = sum(v.numel() * v.element_size() for v in data.to_dict().values() if torch.is_tensor(v))
            if self.cache and self._cached_bytes + size <= self.cache_bytes:
                self._cache[i] = data
                self._cached_bytes += size
        if self.subsample is None or self.subsample >= data.num_nodes:
            return data
        state = int(np.random.SeedSequence([self.seed, self.epoch, self.ids[i]]).generate_state(1)[0])
        keep = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(state))[: self.subsample]
        keep = keep.sort().values
        n = data.num_nodes
        out = Data(**{k: (v[keep] if torch.is_tensor(v) and v.shape[:1] == (n,) else v)
                      for k, v in data.to_dict().items()})
        out.weight = out.weight * (data.weight.sum() / out.weight.sum())  # still integrates the full measure
        out.kept_points = keep  # which points of the geometry these are (mesh edges follow them)
        return out

"""PyG's `Data` and `Batch`, imported once here: torch-geometric's package import runs `torch.jit.script`,
which recent torch flags with a FutureWarning that is not the user's concern (nor ours)."""
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from torch_geometric.data import Batch, Data

__all__ = ["Batch", "Data"]

"""Dataset families: each a `Family` that makes one sample from a seed."""
from geoop.data.families.base import Family, FieldSpec


def get_family(name: str) -> Family:
    """The family called `name` (imports its solver modules only when asked)."""
    from importlib import import_module

    from geoop.errors import GeoopError

    if name not in FAMILIES:
        raise GeoopError(f"unknown dataset family {name!r}", fix=f"choose one of {', '.join(FAMILIES)}")
    return import_module(f"geoop.data.families.{name}").FAMILY


FAMILIES = ("poisson2d", "elasticity2d", "potential3d", "airfoil2d", "body3d")

__all__ = ["FAMILIES", "FieldSpec", "Family", "get_family"]

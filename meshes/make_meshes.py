"""Make the example geometries in this folder with gmsh (OpenCASCADE kernel) and geoop itself.

    python meshes/make_meshes.py [--out meshes]

Needs the `data` extra (gmsh). Every file stays under 1 MB:
- heat_sink.stl      finned heat sink, closed triangle surface (STL, no fields)
- bracket.obj        L-shaped mounting bracket with two bolt holes, closed surface (OBJ)
- plate_with_holes.msh  2D plate with three holes, triangles, physical groups (gmsh MSH 4.1)
- naca0012.vtu       2D channel around a NACA 0012 section, with the exact wall distance field (VTU)
- block_with_hole.vtu  3D box minus a sphere, tetrahedra, with the distance to the hole (VTU)
- bracket_scan.ply   a noisy point cloud with normals sampled on the bracket, like a 3D scan (PLY, no faces)
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import geoop


def _gmsh():
    try:
        import gmsh
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SystemExit("gmsh is needed to make the meshes: pip install 'geoop[data]'") from e
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.option.setNumber("General.NumThreads", 1)
    gmsh.option.setNumber("Mesh.RandomSeed", 1)
    return gmsh


def _export(gmsh, path: Path) -> geoop.Geometry:
    """Write gmsh's current mesh in its own MSH format, then load it with geoop."""
    with tempfile.TemporaryDirectory() as tmp:
        msh = os.path.join(tmp, "mesh.msh")
        gmsh.write(msh)
        return geoop.load(msh, sort=True)


def heat_sink(out: Path) -> None:
    gmsh = _gmsh()
    occ = gmsh.model.occ
    base = occ.addBox(0, 0, 0, 40, 30, 4)
    fins = [(3, occ.addBox(2 + 6 * i, 0, 4, 1.6, 30, 18)) for i in range(7)]
    occ.fuse([(3, base)], fins)
    occ.synchronize()
    gmsh.option.setNumber("Mesh.MeshSizeMax", 2.5)
    gmsh.model.mesh.generate(2)
    surface = _export(gmsh, out)
    gmsh.finalize()
    geoop.Geometry(surface.points, {"triangle": surface.cells["triangle"]}).save(out / "heat_sink.stl")


def bracket(out: Path) -> geoop.Geometry:
    gmsh = _gmsh()
    occ = gmsh.model.occ
    foot = occ.addBox(0, 0, 0, 60, 40, 6)
    wall = occ.addBox(0, 0, 0, 6, 40, 50)
    body, _ = occ.fuse([(3, foot)], [(3, wall)])
    holes = [(3, occ.addCylinder(35, 20, -1, 0, 0, 8, 5)), (3, occ.addCylinder(-1, 20, 32, 8, 0, 0, 6))]
    occ.cut(body, holes)
    occ.synchronize()
    gmsh.option.setNumber("Mesh.MeshSizeMax", 3.0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 16)
    gmsh.model.mesh.generate(2)
    surface = _export(gmsh, out)
    gmsh.finalize()
    g = geoop.Geometry(surface.points, {"triangle": surface.cells["triangle"]})
    g.save(out / "bracket.obj")
    return g


def plate_with_holes(out: Path) -> None:
    gmsh = _gmsh()
    occ = gmsh.model.occ
    plate = occ.addRectangle(0, 0, 0, 2.0, 1.0)
    disks = [(2, occ.addDisk(x, y, 0, r, r)) for x, y, r in [(0.5, 0.5, 0.2), (1.2, 0.3, 0.12), (1.5, 0.7, 0.15)]]
    occ.cut([(2, plate)], disks)
    occ.synchronize()
    curves = [c[1] for c in gmsh.model.getEntities(1)]
    outer, holes = [], []
    for c in curves:
        lo = gmsh.model.getBoundingBox(1, c)
        (outer if min(lo[0], lo[1]) < 1e-9 or lo[3] > 2 - 1e-9 or lo[4] > 1 - 1e-9 else holes).append(c)
    gmsh.model.addPhysicalGroup(1, outer, name="outer")
    gmsh.model.addPhysicalGroup(1, holes, name="holes")
    gmsh.model.addPhysicalGroup(2, [s[1] for s in gmsh.model.getEntities(2)], name="plate")
    gmsh.option.setNumber("Mesh.MeshSizeMax", 0.04)
    gmsh.model.mesh.generate(2)
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.option.setNumber("Mesh.Binary", 1)
    gmsh.write(str(out / "plate_with_holes.msh"))
    gmsh.finalize()


def naca0012(out: Path) -> None:
    x = 0.5 * (1 - np.cos(np.linspace(0, np.pi, 80)))  # cosine spacing, dense at both edges
    t = 0.12
    y = 5 * t * (0.2969 * np.sqrt(x) - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3 - 0.1036 * x**4)
    upper = np.stack([x, y], 1)[::-1]
    lower = np.stack([x, -y], 1)[1:-1]
    outline = np.concatenate([upper, lower])
    gmsh = _gmsh()
    geo = gmsh.model.geo
    pts = [geo.addPoint(px, py, 0, 0.01) for px, py in outline]
    foil = geo.addCurveLoop([geo.addSpline(pts + [pts[0]])])
    corners = [geo.addPoint(cx, cy, 0, 0.15) for cx, cy in [(-1.5, -1.0), (3.0, -1.0), (3.0, 1.0), (-1.5, 1.0)]]
    box = geo.addCurveLoop([geo.addLine(corners[i], corners[(i + 1) % 4]) for i in range(4)])
    geo.addPlaneSurface([box, foil])
    geo.synchronize()
    gmsh.model.mesh.generate(2)
    domain = _export(gmsh, out)
    gmsh.finalize()
    tri = geoop.Geometry(domain.points, {"triangle": domain.cells["triangle"]})
    # exact distance to the airfoil: the boundary nodes inside its bounding box are the airfoil's
    on_foil = tri.boundary_mask & (tri.points[:, 0] > -0.01) & (tri.points[:, 0] < 1.01) & \
        (np.abs(tri.points[:, 1]) < 0.1)
    edges = tri.boundary_facets[on_foil[tri.boundary_facets].all(1)]
    foil_curve = geoop.Geometry(tri.points, {"line": edges})
    a, b = foil_curve.points[edges[:, 0]], foil_curve.points[edges[:, 1]]
    p = tri.points[:, None, :]
    s = np.clip(((p - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0, 1)
    wall_distance = np.linalg.norm(p - (a + s[..., None] * (b - a)), axis=-1).min(1)
    tri.with_point_data(wall_distance=wall_distance).save(out / "naca0012.vtu")


def block_with_hole(out: Path) -> None:
    gmsh = _gmsh()
    occ = gmsh.model.occ
    occ.cut([(3, occ.addBox(0, 0, 0, 2, 1, 1))], [(3, occ.addSphere(0.8, 0.5, 0.5, 0.3))])
    occ.synchronize()
    gmsh.option.setNumber("Mesh.MeshSizeMax", 0.12)
    gmsh.model.mesh.generate(3)
    volume = _export(gmsh, out)
    gmsh.finalize()
    g = geoop.Geometry(volume.points, {"tetra": volume.cells["tetra"]})
    hole_distance = np.linalg.norm(g.points - [0.8, 0.5, 0.5], axis=1) - 0.3
    g.with_point_data(hole_distance=hole_distance).save(out / "block_with_hole.vtu")


def bracket_scan(out: Path, bracket_surface: geoop.Geometry) -> None:
    scan = geoop.sample_surface(bracket_surface, 12_000, seed=0)
    noisy = scan.points + np.random.default_rng(0).normal(scale=0.05, size=scan.points.shape)
    geoop.Geometry(noisy.astype(np.float32).astype(np.float64),
                   normals=scan.normals.astype(np.float32).astype(np.float64)).save(out / "bracket_scan.ply")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    heat_sink(args.out)
    bracket_surface = bracket(args.out)
    plate_with_holes(args.out)
    naca0012(args.out)
    block_with_hole(args.out)
    bracket_scan(args.out, bracket_surface)
    for f in sorted(args.out.iterdir()):
        if f.suffix != ".py":
            print(f"{f.name:24s} {f.stat().st_size / 1024:8.1f} KB  {geoop.load(f)}")


if __name__ == "__main__":
    main()

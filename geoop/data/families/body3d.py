"""`body3d`: incompressible RANS around a 3D bluff body near the ground (the Ahmed body, or closed surfaces a user
names), made with OpenFOAM: `snappyHexMesh` cuts and snaps a hex background mesh to the body (refined at its
surface, at its sharp edges and in a box around it and its wake), `simpleFoam` with the k-omega SST model and wall
functions runs a fixed number of iterations from the free stream, and `forceCoeffs` gives Cd, Cl and the side
force coefficient Cs.

The tunnel: a box from `DOMAIN` (metres; the body's nose at x = 0, the ground at z = 0), uniform inflow of
`U_INF` along +x, a ground moving with the flow (no boundary layer ahead of the body, as on a rolling road), slip
top and sides, zero pressure at the outlet. The Ahmed body (Ahmed, Ramm & Faltin 1984): length 1.044 m, width
0.389 m, height 0.288 m, front edges rounded with radius 0.1 m, a rear slant 0.222 m long at 0-40 degrees,
0.05 m above the ground (the stilts are left out); each sample draws its length, width, height, front radius
and slant angle around those values and a yaw angle (the body turned about the vertical axis; the wind stays
along x). A user's closed surface is scaled to a length of `LENGTH` times a random factor, yawed and set
`CLEARANCE` above the ground.

A sample is the volume mesh inside `CROP` (cells wholly inside it; polyhedra split into tetrahedra), with the
volume fields at its nodes as the solver's files hold them (U in m/s, kinematic pressure p in m^2/s^2, eddy
viscosity nut in m^2/s) and the surface fields on the body's nodes (`on_body`): the pressure coefficient
cp = p / (|U_inf|^2 / 2) and the skin-friction vector cf = tau / (|U_inf|^2 / 2), tau the shear stress of the
fluid on the wall. The body's faces are triangle cells of the sample carrying the solver's own face values
(cell data `p`, `wall_shear`). Coefficients use one reference area for every sample, `AREF` (the baseline
body's frontal area), so they compare forces directly. A case counts as converged when its drag coefficient
moved by less than `settle` (relative) over the last quarter of the iterations.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from geoop.data.families.base import Family, FieldSpec
from geoop.data.meshing import MeshingError, centred_closed_surface, drop_unused_nodes, mesh_with_gmsh
from geoop.data.openfoam import (SolverError, children_cpu_seconds, foam_file, keep_case, read_force_coefficients,
                                 read_residuals, run_openfoam)
from geoop.geometry.cells import CELL_DIM, crop_to_box, simplices
from geoop.geometry.geometry import Geometry
from geoop.metrics.forces import ForceSpec

if TYPE_CHECKING:
    import trimesh

#: free-stream speed (m/s) and kinematic viscosity of air (m^2/s): Re = 2.8e6 on the body length, as in the
#: experiment
U_INF, NU = 40.0, 1.5e-5
#: the baseline Ahmed body (m): length, width, height, front radius, slant length, ground clearance
LENGTH, WIDTH, HEIGHT, RADIUS, SLANT_LENGTH, CLEARANCE = 1.044, 0.389, 0.288, 0.1, 0.222, 0.05
#: reference area (the baseline's frontal area, m^2) and length of the coefficients
AREF, LREF = WIDTH * HEIGHT, LENGTH
#: what a sample draws: Ahmed dimensions as factors of the baseline, slant and yaw in degrees; a user's surface
#: takes `scale` (its length as a factor of LENGTH) and `yaw`
RANGES = {"length": (0.9, 1.1), "width": (0.85, 1.15), "height": (0.85, 1.15), "radius": (0.6, 1.2),
          "slant": (0.0, 40.0), "yaw": (-10.0, 10.0), "scale": (0.9, 1.1)}
#: the tunnel ((x0, x1), (y0, y1), (z0, z1)) and the sample's box, in metres
DOMAIN = ((-1.5, 3.5), (-1.0, 1.0), (0.0, 1.2))
CROP = ((-0.4, 2.4), (-0.6, 0.6), (0.0, 0.7))
#: the refined box around the body and its wake (cells of the background size / 2**level inside)
WAKE = ((-0.3, 2.4), (-0.55, 0.55), (0.0, 0.55))
#: free-stream turbulence: intensity and length scale (m) of k and omega at the inlet
INTENSITY, MIXING_LENGTH = 0.01, 0.1
SHAPES = ("ahmed",)


def draw_design(rng: np.random.Generator) -> dict[str, float]:
    """Ahmed body dimensions (m), slant and yaw (degrees), uniform in `RANGES`."""
    factor = {k: rng.uniform(*RANGES[k]) for k in ("length", "width", "height", "radius")}
    return {"length": LENGTH * factor["length"], "width": WIDTH * factor["width"],
            "height": HEIGHT * factor["height"], "radius": RADIUS * factor["radius"],
            "slant": float(rng.uniform(*RANGES["slant"])), "yaw": float(rng.uniform(*RANGES["yaw"]))}


def ahmed_surface(gmsh, length: float, width: float, height: float, radius: float, slant: float, yaw: float,
                  size: float) -> None:
    """gmsh (OCC) surface mesh of an Ahmed body: a box `length x width x height` from x = 0, centred on y = 0,
    `CLEARANCE` above z = 0, its four front edges rounded with `radius`, the top rear cut by a plane at `slant`
    degrees over `SLANT_LENGTH` (measured along the slant), turned by `yaw` degrees about the vertical axis
    through its middle; triangles of at most `size`, finer on the rounded edges."""
    occ = gmsh.model.occ
    body = occ.addBox(0, -width / 2, CLEARANCE, length, width, height)
    occ.synchronize()
    eps = 1e-6
    front = [t for _, t in gmsh.model.getEntitiesInBoundingBox(-eps, -width, CLEARANCE - eps, eps, width,
                                                                CLEARANCE + height + eps, 1)]
    body = occ.fillet([body], front, [radius])[0][1]
    if slant > 0:
        a = np.radians(slant)
        top, start, end = CLEARANCE + height, length - SLANT_LENGTH * np.cos(a), length + 0.1
        corners = [(start, top), (end, top - (end - start) * np.tan(a)), (end, top + 0.1), (start, top + 0.1)]
        tags = [occ.addPoint(x, -width, z) for x, z in corners]
        loop = occ.addCurveLoop([occ.addLine(tags[i], tags[(i + 1) % 4]) for i in range(4)])
        wedge = [t for d, t in occ.extrude([(2, occ.addPlaneSurface([loop]))], 0, 2 * width, 0) if d == 3]
        body = occ.cut([(3, body)], [(3, wedge[0])])[0][0][1]
    occ.rotate([(3, body)], length / 2, 0, 0, 0, 0, 1, np.radians(yaw))
    occ.synchronize()
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size / 4)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 12)
    gmsh.model.mesh.generate(2)


def user_surface(path: str, scale: float, yaw: float) -> trimesh.Trimesh:
    """A closed surface file as a body (x along the flow, z up): scaled by `scale` times the largest factor that
    keeps its length at most `LENGTH`, its width at most 2 `WIDTH` and its height at most 1.5 `HEIGHT`, yawed
    about the vertical axis, its nose at x = 0, centred on y = 0, `CLEARANCE` above the ground (a
    `trimesh.Trimesh`)."""
    mesh = centred_closed_surface(path)
    mesh.apply_scale(scale * float(np.min(np.array([LENGTH, 2 * WIDTH, 1.5 * HEIGHT]) / mesh.extents)))
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    mesh.vertices = mesh.vertices @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    lo = mesh.bounds[0]
    mesh.apply_translation([-lo[0], -mesh.bounds.mean(axis=0)[1], CLEARANCE - lo[2]])
    return mesh


def _box(box: tuple[tuple[float, float], ...]) -> str:
    return f"min ({' '.join(str(a) for a, _ in box)}); max ({' '.join(str(b) for _, b in box)});"


def write_mesh_dictionaries(case: Path, cell: float, levels: tuple[int, int], wake_level: int) -> None:
    """blockMesh (the tunnel in cubes of about `cell` metres; patches inlet, outlet, ground, top, sides),
    surfaceFeatureExtract (the body's edges sharper than 30 degrees) and snappyHexMesh (body surface at levels
    `levels` (min, max) by curvature, edges at the max, the wake box at `wake_level`; no layers: wall
    functions) dictionaries, for `constant/triSurface/body.stl`."""
    (x0, x1), (y0, y1), (z0, z1) = DOMAIN
    n = [max(1, int(round((b - a) / cell))) for a, b in DOMAIN]
    foam_file(case / "system" / "blockMeshDict", "dictionary", f"""convertToMeters 1;
vertices (({x0} {y0} {z0}) ({x1} {y0} {z0}) ({x1} {y1} {z0}) ({x0} {y1} {z0})
          ({x0} {y0} {z1}) ({x1} {y0} {z1}) ({x1} {y1} {z1}) ({x0} {y1} {z1}));
blocks (hex (0 1 2 3 4 5 6 7) ({n[0]} {n[1]} {n[2]}) simpleGrading (1 1 1));
boundary
(
    inlet {{ type patch; faces ((0 4 7 3)); }}
    outlet {{ type patch; faces ((1 2 6 5)); }}
    ground {{ type wall; faces ((0 3 2 1)); }}
    top {{ type patch; faces ((4 5 6 7)); }}
    sides {{ type patch; faces ((0 1 5 4) (3 7 6 2)); }}
);
""")
    foam_file(case / "system" / "surfaceFeatureExtractDict", "dictionary",
              "body.stl { extractionMethod extractFromSurface; extractFromSurfaceCoeffs { includedAngle 150; } "
              "writeObj no; }\n")
    inside = f"{x0 + 0.1 * cell:.6g} {y1 - 0.1 * cell - 0.3:.6g} {z1 - 0.1 * cell - 0.2:.6g}"
    foam_file(case / "system" / "snappyHexMeshDict", "dictionary", f"""castellatedMesh true; snap true;
addLayers false;
geometry {{ body.stl {{ type triSurfaceMesh; name body; }} wake {{ type searchableBox; {_box(WAKE)} }} }}
castellatedMeshControls
{{
    maxLocalCells 5000000; maxGlobalCells 10000000; minRefinementCells 0; maxLoadUnbalance 0.1;
    nCellsBetweenLevels 2; resolveFeatureAngle 30; allowFreeStandingZoneFaces false;
    features ({{ file "body.eMesh"; level {levels[1]}; }});
    refinementSurfaces {{ body {{ level ({levels[0]} {levels[1]}); patchInfo {{ type wall; }} }} }}
    refinementRegions {{ wake {{ mode inside; levels ((1e15 {wake_level})); }} }}
    locationInMesh ({inside});
}}
snapControls {{ nSmoothPatch 3; tolerance 2.0; nSolveIter 30; nRelaxIter 5; nFeatureSnapIter 10;
    implicitFeatureSnap false; explicitFeatureSnap true; multiRegionFeatureSnap false; }}
addLayersControls {{ relativeSizes true; layers {{ }} expansionRatio 1; finalLayerThickness 0.3; minThickness 0.1;
    nGrow 0; featureAngle 60; nRelaxIter 3; nSmoothSurfaceNormals 1; nSmoothNormals 3; nSmoothThickness 10;
    maxFaceThicknessRatio 0.5; maxThicknessToMedialRatio 0.3; minMedialAxisAngle 90; nBufferCellsNoExtrude 0;
    nLayerIter 50; }}
meshQualityControls {{ maxNonOrtho 65; maxBoundarySkewness 20; maxInternalSkewness 4; maxConcave 80;
    minVol 1e-13; minTetQuality 1e-15; minArea -1; minTwist 0.02; minDeterminant 0.001; minFaceWeight 0.05;
    minVolRatio 0.01; minTriangleTwist -1; nSmoothScale 4; errorReduction 0.75; }}
mergeTolerance 1e-6;
""")


def write_flow_dictionaries(case: Path, iterations: int, tolerance: float) -> None:
    """Fields, models, schemes and controls of a steady k-omega SST `simpleFoam` run of `iterations` (or until
    every initial residual is below `tolerance`), with `forceCoeffs` and `wallShearStress` on the body."""
    k = 1.5 * (INTENSITY * U_INF) ** 2
    omega = np.sqrt(k) / (0.09**0.25 * MIXING_LENGTH)
    inlet_outlet = "{ type inletOutlet; inletValue $internalField; value $internalField; }"
    fixed = "{ type fixedValue; value $internalField; }"

    def field(name: str, cls: str, dims: str, inside: str, inlet: str, outlet: str, wall: str,
              ground: str | None = None) -> None:
        patches = {"inlet": inlet, "outlet": outlet, "body": wall, "ground": ground or wall,
                   "top": "{ type slip; }", "sides": "{ type slip; }"}
        body = "\n".join(f"    {k} {v}" for k, v in patches.items())
        foam_file(case / "0" / name, cls, f"dimensions {dims};\ninternalField uniform {inside};\n"
                                           f"boundaryField\n{{\n{body}\n}}\n")

    field("U", "volVectorField", "[0 1 -1 0 0 0 0]", f"({U_INF} 0 0)", fixed,
          "{ type inletOutlet; inletValue uniform (0 0 0); value $internalField; }", "{ type noSlip; }", fixed)
    field("p", "volScalarField", "[0 2 -2 0 0 0 0]", "0", "{ type zeroGradient; }",
          "{ type fixedValue; value uniform 0; }", "{ type zeroGradient; }")
    field("k", "volScalarField", "[0 2 -2 0 0 0 0]", f"{k:.6g}", fixed, inlet_outlet,
          "{ type kqRWallFunction; value $internalField; }")
    field("omega", "volScalarField", "[0 0 -1 0 0 0 0]", f"{omega:.6g}", fixed, inlet_outlet,
          "{ type omegaWallFunction; value $internalField; }")
    field("nut", "volScalarField", "[0 2 -1 0 0 0 0]", "0", "{ type calculated; value uniform 0; }",
          "{ type calculated; value uniform 0; }", "{ type nutkWallFunction; value uniform 0; }")
    foam_file(case / "constant" / "transportProperties", "dictionary", f"transportModel Newtonian;\nnu {NU};\n")
    foam_file(case / "constant" / "turbulenceProperties", "dictionary",
              "simulationType RAS;\nRAS { RASModel kOmegaSST; turbulence on; printCoeffs off; }\n")
    foam_file(case / "system" / "controlDict", "dictionary", f"""application simpleFoam;
startFrom startTime; startTime 0; stopAt endTime; endTime {iterations}; deltaT 1;
writeControl timeStep; writeInterval {iterations}; purgeWrite 0; writeFormat binary; writePrecision 10;
writeCompression off; timeFormat general; timePrecision 8; runTimeModifiable false;
functions
{{
    forceCoeffs {{ type forceCoeffs; libs ("libforces.so"); writeControl timeStep; writeInterval 1; log false;
        patches (body); rho rhoInf; rhoInf 1; CofR ({LENGTH / 2} 0 0); pitchAxis (0 1 0); liftDir (0 0 1);
        dragDir (1 0 0); magUInf {U_INF}; lRef {LREF}; Aref {AREF}; }}
    wallShearStress {{ type wallShearStress; libs ("libfieldFunctionObjects.so"); patches (body);
        writeControl writeTime; log false; }}
}}
""")
    # first-order upwind for k and omega; a bounded limited-linear scheme for U (linearUpwind diverged on
    # these coarse snapped meshes)
    foam_file(case / "system" / "fvSchemes", "dictionary", """ddtSchemes { default steadyState; }
gradSchemes { default Gauss linear; grad(U) cellLimited Gauss linear 1; }
divSchemes { default none; div(phi,U) bounded Gauss limitedLinearV 1; div(phi,k) bounded Gauss upwind;
    div(phi,omega) bounded Gauss upwind; div((nuEff*dev2(T(grad(U))))) Gauss linear; }
laplacianSchemes { default Gauss linear limited corrected 0.33; }
interpolationSchemes { default linear; }
snGradSchemes { default limited corrected 0.33; }
wallDist { method meshWave; }
""")
    foam_file(case / "system" / "fvSolution", "dictionary", f"""solvers
{{
    p {{ solver GAMG; tolerance 1e-7; relTol 0.1; smoother GaussSeidel; }}
    "(U|k|omega)" {{ solver smoothSolver; smoother GaussSeidel; nSweeps 1; tolerance 1e-8; relTol 0.1; }}
}}
SIMPLE {{ nNonOrthogonalCorrectors 0;
    residualControl {{ p {tolerance}; U {tolerance}; "(k|omega)" {tolerance}; }} }}
relaxationFactors {{ fields {{ p 0.3; }} equations {{ U 0.7; "(k|omega)" 0.7; }} }}
""")


def solve_case(case: Path, timeout: float, settle: float) -> dict[str, float]:
    """Mesh (blockMesh, surfaceFeatureExtract, snappyHexMesh) and solve (simpleFoam) a written case; returns
    the last force coefficients (cd, cl, cs), whether Cd settled (its range over the last quarter of the
    iterations below `settle` of its value), iterations, final residuals, cells and CPU seconds."""
    started = children_cpu_seconds()
    run_openfoam(case, "blockMesh", "log.blockMesh", timeout)
    run_openfoam(case, "surfaceFeatureExtract", "log.surfaceFeatureExtract", timeout)
    run_openfoam(case, "snappyHexMesh -overwrite", "log.snappyHexMesh", timeout)
    meshed = children_cpu_seconds()
    run_openfoam(case, "simpleFoam", "log.simpleFoam", timeout)
    iterations, residual_converged, residuals = read_residuals(case / "log.simpleFoam")
    history = read_force_coefficients(case)
    tail = history["Cd"][-max(2, len(history["Cd"]) // 4):]
    drift = float(np.ptp(tail) / max(abs(tail[-1]), 1e-12))
    header = (case / "constant" / "polyMesh" / "owner").read_bytes()[:2000].decode(errors="replace")
    cells = re.search(r"nCells:\s*(\d+)", header)  # the mesh writer's note in the file's header
    return {"cd": float(history["Cd"][-1]), "cl": float(history["Cl"][-1]), "cs": float(history["Cs"][-1]),
            "cd_drift": drift, "converged": float(residual_converged or drift < settle),
            "iterations": float(iterations), **{f"residual_{k}": v for k, v in residuals.items()},
            "cells": float(cells.group(1)) if cells else float("nan"), "mesh_cpu_seconds": meshed - started,
            "solver_cpu_seconds": children_cpu_seconds() - meshed}


def body_faces_on(volume: Geometry, wall: Geometry, tolerance: float, fields: tuple[str, ...]
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The body patch's faces split into triangles `(F, 3)`, as indices of the volume mesh's nodes (each wall
    node is a node of the volume mesh; an error if one is not within `tolerance`), and the patch's cell
    `fields` on them `(F, ...)`."""
    distance, nearest = cKDTree(volume.points).query(wall.points)
    if distance.max() > tolerance:
        raise SolverError(f"the body patch's nodes are not nodes of the volume mesh ({distance.max():.2g} m off)")
    triangles, owner = simplices(wall.cells, 2)
    faces = [t for t in wall.cells if CELL_DIM.get(t) == 2 and t != "polygon"]
    values = {name: np.concatenate([wall.cell_data[name][t] for t in faces])[owner] for name in fields}
    return nearest[triangles], values


def make(rng: np.random.Generator, shapes: tuple[str, ...] = SHAPES, surface_files: tuple[str, ...] = (),
         cell: float = 0.125, levels: tuple[int, int] | str = (2, 3), wake_level: int = 1, surface_size: float = 0.03,
         iterations: int = 300, tolerance: float = 1e-5, settle: float = 0.01, solver_timeout: float = 600.0,
         mesh_timeout: float = 60.0, length: float | None = None, width: float | None = None,
         height: float | None = None, radius: float | None = None, slant: float | None = None,
         yaw: float | None = None, cases: str | None = None) -> Geometry:
    """One sample: a body drawn among `shapes` ("ahmed") and `surface_files`, its dimensions, slant and yaw
    drawn; `length`, `width`, `height`, `radius` (m), `slant` and `yaw` (degrees) fix what they name (the
    baseline body: 1.044, 0.389, 0.288, 0.1), meshed and solved, read back inside `CROP`.

    Mesh knobs: `cell` the background cube (m), `levels` the body surface's refinement levels (min, max; a
    level halves the cell), `wake_level` the wake box's, `surface_size` the Ahmed body's triangles (m).
    The defaults give 20-30k cells and 35-50 CPU-seconds a case here; `cell=0.1 levels=3,4 wake_level=2`
    about 200k cells. `cases`: a folder where each solved OpenFOAM case is kept too."""
    from geoop.io.vtk_formats import read_openfoam

    levels = tuple(int(v) for v in (levels.split(",") if isinstance(levels, str) else levels))  # "3,4" too
    if len(levels) != 2 or levels[0] > levels[1]:
        raise MeshingError(f"levels {levels}: give the body's (min, max) refinement levels", fix="e.g. levels=2,3")
    choices = list(shapes) + [str(Path(f)) for f in surface_files]
    if not choices:
        raise MeshingError("no body to draw", fix="name `ahmed` or closed surface files (--shapes)")
    pick = choices[int(rng.integers(len(choices)))]
    fixed = {"length": length, "width": width, "height": height, "radius": radius, "slant": slant, "yaw": yaw}
    design = {**draw_design(rng), **{k: float(v) for k, v in fixed.items() if v is not None}}
    scale = float(rng.uniform(*RANGES["scale"]))
    surface, parameters = posed_body(pick, design, scale, surface_size, mesh_timeout)
    parameters["shape"] = float(choices.index(pick))
    with tempfile.TemporaryDirectory(prefix="geoop-body3d-") as tmp:
        case = Path(tmp)
        (case / "constant" / "triSurface").mkdir(parents=True)
        surface.export(case / "constant" / "triSurface" / "body.stl")
        write_mesh_dictionaries(case, cell, levels, wake_level)
        write_flow_dictionaries(case, iterations, tolerance)
        solved = solve_case(case, solver_timeout, settle)
        volume, wall = read_openfoam(case), read_openfoam(case, patches="body")
        if cases is not None:
            name = "_".join([Path(pick).stem] + [f"{k}{v:.4g}" for k, v in parameters.items() if k != "shape"])
            keep_case(case, Path(cases) / name,
                      {**parameters, **{k: v for k, v in solved.items() if k in ("cd", "cl", "cs", "converged")}})
    return sample_around_body(volume, wall, {**parameters, **solved})


def posed_body(pick: str, design: dict[str, float], scale: float, surface_size: float, mesh_timeout: float
               ) -> tuple[trimesh.Trimesh, dict[str, float]]:
    """The body's closed surface in the tunnel (a `trimesh.Trimesh`): the Ahmed body of `design` ("ahmed"), or
    the surface file `pick` scaled by `scale` and yawed by `design["yaw"]`; with the parameters it records.
    An error, before any meshing, where the body comes within 0.05 m of the sample's box."""
    if pick == "ahmed":
        import trimesh

        points, cells = mesh_with_gmsh(ahmed_surface, *(design[k] for k in ("length", "width", "height", "radius",
                                                                              "slant", "yaw")), surface_size,
                                       timeout=mesh_timeout)
        surface = trimesh.Trimesh(*drop_unused_nodes(points, cells["triangle"]))
        trimesh.repair.fix_normals(surface)
        parameters = {**design, "scale": design["length"] / LENGTH}
    else:
        surface = user_surface(pick, scale, design["yaw"])
        parameters = {"scale": scale, "yaw": design["yaw"]}
    lo, hi = surface.bounds
    box = np.array(CROP)
    if (lo[:2] < box[:2, 0] + 0.05).any() or (hi > box[:, 1] - 0.05).any():  # it stands on the ground
        raise MeshingError(f"the body spans {np.round(lo, 3)}..{np.round(hi, 3)} m, within 0.05 m of the "
                           f"sample's box {CROP} or beyond", fix="choose a smaller scale or yaw, or body")
    return surface, parameters


def sample_around_body(volume: Geometry, wall: Geometry, values: dict[str, float]) -> Geometry:
    """The sample of a solved case: the volume mesh's cells inside `CROP` with U, p, nut at their nodes, the body
    patch's faces as triangle cells (with the solver's face pressure and wall shear), cp and cf on the body's
    nodes, the free stream at every node, and `values` (design, solver results) as global data."""
    used, cells = crop_to_box(volume.points, volume.cells, CROP)
    remap = np.full(volume.n_points, -1)
    remap[used] = np.arange(len(used))
    triangles, face_data = body_faces_on(volume, wall, 1e-6 * LENGTH, ("p", "wallShearStress"))
    faces = remap[triangles]
    if (faces < 0).any():
        raise MeshingError("the body's cells reach outside the sample's box", fix="choose smaller bodies or yaw")
    fields = {k: np.asarray(v)[used] for k, v in volume.point_data.items()}
    dynamic = 0.5 * U_INF**2
    on_body = np.zeros(len(used), dtype=bool)
    on_body[faces.ravel()] = True
    shear = -fields["wallShearStress"]  # OpenFOAM writes the wall's stress on the fluid
    point_data = {"U": fields["U"], "p": fields["p"], "nut": fields["nut"],
                  "cp": np.where(on_body, fields["p"] / dynamic, 0.0),
                  "cf": np.where(on_body[:, None], shear / dynamic, 0.0), "on_body": on_body,
                  "freestream": np.broadcast_to([U_INF, 0.0, 0.0], (len(used), 3)).copy()}
    return Geometry(volume.points[used], {**cells, "triangle": faces}, point_data=point_data,
                    cell_data={"p": {"triangle": face_data["p"]},
                               "wall_shear": {"triangle": -face_data["wallShearStress"]}},
                    global_data={**{k: np.array(v) for k, v in values.items()},
                                 "u_inf": np.array(U_INF), "nu": np.array(NU), "aref": np.array(AREF),
                                 "lref": np.array(LREF), "freestream": np.array([U_INF, 0.0, 0.0])})


FAMILY = Family(
    name="body3d",
    description=__doc__.strip().splitlines()[0],
    dim=3,
    inputs={"freestream": FieldSpec(3, "m/s", "free-stream velocity, the same at every point")},
    targets={"U": FieldSpec(3, "m/s", "mean velocity"),
             "p": FieldSpec(1, "m^2/s^2", "kinematic pressure (p / rho), 0 at the outlet"),
             "nut": FieldSpec(1, "m^2/s", "turbulent (eddy) viscosity"),
             "cp": FieldSpec(1, "1", "pressure coefficient on the body", mask="on_body"),
             "cf": FieldSpec(3, "1", "skin-friction vector (fluid on wall) on the body", mask="on_body")},
    make=make,
    options={},
    default_n=200,
    solver="OpenFOAM snappyHexMesh + simpleFoam (k-omega SST)",
    splits=(0.7, 0.1, 0.2),
    requires=("gmsh", "vtk", "trimesh"),
    openfoam=True,
    forces=ForceSpec(pressure="cp", shear="cf", surface="on_body", freestream="freestream", ref_area=AREF),
    body="on_body",
    parameters=("length", "width", "height", "radius", "slant", "yaw", "scale"),
    shapes=SHAPES,
)

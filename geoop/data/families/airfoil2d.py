"""`airfoil2d`: incompressible RANS around NACA 4- and 5-digit sections (the AirfRANS protocol, made offline).
A gmsh mesh with a quad boundary layer at the wall (first cell `first_cell` chords, `layers` layers growing by
`growth`, a fan at the sharp trailing edge), triangles outside sized by the distance to the wall and to the
wake, a circular far field `far_field` chords away; extruded one cell and solved by OpenFOAM's `simpleFoam`
with the Spalart-Allmaras model (free-stream conditions at the far field, a Spalding wall function) until
every initial residual is below `tolerance` or `max_iterations` pass. `forceCoeffs` gives Cl, Cd and Cm.

A sample is the 2D mesh inside `box` (the region AirfRANS scores; cells wholly inside it), with the volume
fields at its nodes as the solver's files hold them (U in m/s, kinematic pressure p in m^2/s^2, eddy viscosity
nut in m^2/s; OpenFOAM's interpolation to the points, the wall's own values on it) and the surface fields on
the airfoil's nodes (`on_airfoil`): the pressure coefficient cp = p / (|U_inf|^2 / 2) and the skin-friction
vector cf = tau / (|U_inf|^2 / 2), tau the shear stress of the fluid on the wall. The wall's faces are line
cells of the sample carrying the solver's own face values (cell data `p`, `wall_shear`), and its global data
the section, the flow, the solver's coefficients (cl, cd, cm), convergence, iterations and CPU time.
Unconverged cases (stalled sections) are kept and flagged (`converged` 0), outside the splits unless
`geoop data make --keep-unconverged`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from geoop.data.designs import DesignSpace
from geoop.data.families.base import Family, FieldSpec
from geoop.data.meshing import MeshingError, mesh_with_gmsh
from geoop.data.naca import NACA
from geoop.data.openfoam import (SolverError, children_cpu_seconds, foam_file, keep_case, read_force_coefficients,
                                 read_residuals, run_openfoam, set_patch_types)
from geoop.geometry.cells import crop_to_box
from geoop.geometry.geometry import Geometry
from geoop.metrics.forces import ForceSpec

#: kinematic viscosity of air (m^2/s) and the chord (m): the free-stream speed is Re nu / c
NU, CHORD = 1.56e-5, 1.0
#: AirfRANS' ranges: 4-digit camber, its position, thickness; 5-digit design lift, camber position (reflex
#: camber lines exist, with a zero quarter-chord moment, up to about 0.3: the tabulated 221-251 span 0.1-0.25); flow
RANGES = {"camber": (0.0, 0.07), "position4": (0.1, 0.7), "thickness": (0.05, 0.20), "design_cl": (0.0, 0.6),
          "position5": (0.15, 0.40), "position5_reflex": (0.15, 0.25), "alpha": (-5.0, 15.0), "reynolds": (2e6, 6e6)}
#: SA free-stream turbulence: nuTilda = 3 nu (fully turbulent)
NU_TILDA_RATIO = 3.0


def draw_design(rng: np.random.Generator) -> dict[str, float]:
    """A random design: a section (`draw_section`), then the angle of attack (degrees) and the Reynolds number,
    uniform in AirfRANS' ranges, as {series, thickness, camber, position, design_cl, reflex, alpha, reynolds}."""
    section = draw_section(rng)
    alpha, reynolds = float(rng.uniform(*RANGES["alpha"])), float(rng.uniform(*RANGES["reynolds"]))
    return {**section_parameters(section), "alpha": alpha, "reynolds": reynolds}


def section_parameters(section: NACA) -> dict[str, float]:
    """A section's design parameters as plain numbers (the keys of `NACA`; `reflex` 0 or 1)."""
    return {"series": float(section.series), "thickness": section.thickness, "camber": section.camber,
            "position": section.position, "design_cl": section.design_cl, "reflex": float(section.reflex)}


def draw_section(rng: np.random.Generator) -> NACA:
    """A random NACA section: 4- or 5-digit with equal odds, parameters uniform in AirfRANS' ranges."""
    thickness = rng.uniform(*RANGES["thickness"])
    if rng.random() < 0.5:
        return NACA(4, thickness, camber=rng.uniform(*RANGES["camber"]), position=rng.uniform(*RANGES["position4"]))
    reflex = bool(rng.random() < 0.5)
    position = rng.uniform(*RANGES["position5_reflex" if reflex else "position5"])
    return NACA(5, thickness, design_cl=rng.uniform(*RANGES["design_cl"]), position=position, reflex=reflex)


def build_mesh(gmsh, outline: np.ndarray, alpha: float, far_field: float, first_cell: float, growth: float,
               layers: int, wall_size: float, wake_size: float) -> None:
    """gmsh model of the fluid around `outline` (`(F, 2)`, closed, the trailing edge first): one wall face per
    outline segment, a boundary layer of quads, triangles graded by the distance to the wall and to a wake
    line along the free stream (angle `alpha` in degrees), a circle of radius `far_field` chords; extruded
    one cell (span 1) with the physical groups gmshToFoam turns into patches: airfoil, farfield, frontAndBack."""
    geo = gmsh.model.geo
    corner = [geo.addPoint(x, y, 0) for x, y in outline]
    wall = [geo.addLine(corner[i], corner[(i + 1) % len(corner)]) for i in range(len(corner))]
    centre = geo.addPoint(0.5, 0, 0)
    rim = [geo.addPoint(0.5 + far_field * np.cos(a), far_field * np.sin(a), 0) for a in np.arange(4) * np.pi / 2]
    arcs = [geo.addCircleArc(rim[i], centre, rim[(i + 1) % 4]) for i in range(4)]
    plane = geo.addPlaneSurface([geo.addCurveLoop(arcs), geo.addCurveLoop(wall)])
    direction = np.array([np.cos(np.radians(alpha)), np.sin(np.radians(alpha))])
    wake = [geo.addPoint(*(outline[0] + s * direction), 0) for s in np.linspace(0.05, 4.0, 60)]
    geo.synchronize()
    for line in wall:
        gmsh.model.mesh.setTransfiniteCurve(line, 2)
    field = gmsh.model.mesh.field
    layer = field.add("BoundaryLayer")
    field.setNumbers(layer, "CurvesList", wall)
    field.setNumber(layer, "Size", first_cell)
    field.setNumber(layer, "Ratio", growth)
    field.setNumber(layer, "Thickness", first_cell * (growth**layers - 1) / (growth - 1))
    field.setNumber(layer, "Quads", 1)
    field.setNumbers(layer, "FanPointsList", [corner[0]])
    field.setAsBoundaryLayer(layer)
    ramps = []
    for source, size, reach in ((("CurvesList", wall), wall_size, 0.02), (("PointsList", wake), wake_size, 0.05)):
        distance = field.add("Distance")
        field.setNumbers(distance, *source)
        ramp = field.add("Threshold")
        field.setNumber(ramp, "InField", distance)
        for name, value in (("SizeMin", size), ("SizeMax", 0.1 * far_field), ("DistMin", reach),
                            ("DistMax", 0.9 * far_field)):
            field.setNumber(ramp, name, value)
        ramps.append(ramp)
    smallest = field.add("Min")
    field.setNumbers(smallest, "FieldsList", ramps)
    field.setAsBackgroundMesh(smallest)
    for option in ("MeshSizeFromPoints", "MeshSizeFromCurvature", "MeshSizeExtendFromBoundary"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)
    gmsh.option.setNumber("Mesh.Algorithm", 5)
    extruded = geo.extrude([(2, plane)], 0, 0, CHORD, numElements=[1], recombine=True)
    geo.synchronize()
    sides = [tag for dim, tag in extruded[2:] if dim == 2]
    gmsh.model.addPhysicalGroup(2, [plane, extruded[0][1]], name="frontAndBack")
    gmsh.model.addPhysicalGroup(2, sides[:4], name="farfield")
    gmsh.model.addPhysicalGroup(2, sides[4:], name="airfoil")
    gmsh.model.addPhysicalGroup(3, [extruded[1][1]], name="fluid")
    gmsh.model.mesh.generate(3)


def write_case(case: Path, velocity: np.ndarray, alpha: float, tolerance: float, max_iterations: int) -> None:
    """The dictionaries of a steady Spalart-Allmaras `simpleFoam` run with free stream `velocity` (m/s)."""
    ux, uy = velocity
    nu_tilda = NU_TILDA_RATIO * NU
    patches = {"frontAndBack": "{ type empty; }"}

    def field(name: str, cls: str, dims: str, inside: str, farfield: str, wall: str) -> None:
        body = "\n".join(f"    {k} {v}" for k, v in {"farfield": farfield, "airfoil": wall, **patches}.items())
        foam_file(case / "0" / name, cls, f"dimensions {dims};\ninternalField uniform {inside};\n"
                                           f"boundaryField\n{{\n{body}\n}}\n")

    field("U", "volVectorField", "[0 1 -1 0 0 0 0]", f"({ux} {uy} 0)",
          "{ type freestreamVelocity; freestreamValue $internalField; }", "{ type noSlip; }")
    field("p", "volScalarField", "[0 2 -2 0 0 0 0]", "0",
          "{ type freestreamPressure; freestreamValue $internalField; }", "{ type zeroGradient; }")
    field("nuTilda", "volScalarField", "[0 2 -1 0 0 0 0]", f"{nu_tilda}",
          "{ type freestream; freestreamValue $internalField; }", "{ type fixedValue; value uniform 0; }")
    field("nut", "volScalarField", "[0 2 -1 0 0 0 0]", f"{nu_tilda}",
          "{ type freestream; freestreamValue $internalField; }",
          "{ type nutUSpaldingWallFunction; value uniform 0; }")
    foam_file(case / "constant" / "transportProperties", "dictionary", f"transportModel Newtonian;\nnu {NU};\n")
    foam_file(case / "constant" / "turbulenceProperties", "dictionary",
              "simulationType RAS;\nRAS { RASModel SpalartAllmaras; turbulence on; printCoeffs off; }\n")
    a = np.radians(alpha)
    foam_file(case / "system" / "controlDict", "dictionary", f"""application simpleFoam;
startFrom startTime; startTime 0; stopAt endTime; endTime {max_iterations}; deltaT 1;
writeControl timeStep; writeInterval {max_iterations}; purgeWrite 0; writeFormat binary; writePrecision 10;
writeCompression off; timeFormat general; timePrecision 8; runTimeModifiable false;
functions
{{
    forceCoeffs {{ type forceCoeffs; libs ("libforces.so"); writeControl timeStep; writeInterval 1; log false;
        patches (airfoil); rho rhoInf; rhoInf 1; CofR (0.25 0 0); pitchAxis (0 0 1);
        liftDir ({-np.sin(a)} {np.cos(a)} 0); dragDir ({np.cos(a)} {np.sin(a)} 0);
        magUInf {np.hypot(ux, uy)}; lRef {CHORD}; Aref {CHORD}; }}
    wallShearStress {{ type wallShearStress; libs ("libfieldFunctionObjects.so"); patches (airfoil);
        writeControl writeTime; log false; }}
}}
""")
    foam_file(case / "system" / "fvSchemes", "dictionary", """ddtSchemes { default steadyState; }
gradSchemes { default Gauss linear; }
divSchemes { default none; div(phi,U) bounded Gauss linearUpwind grad(U); div(phi,nuTilda) bounded Gauss upwind;
    div((nuEff*dev2(T(grad(U))))) Gauss linear; }
laplacianSchemes { default Gauss linear corrected; }
interpolationSchemes { default linear; }
snGradSchemes { default corrected; }
wallDist { method meshWave; }
""")
    foam_file(case / "system" / "fvSolution", "dictionary", f"""solvers
{{
    p {{ solver GAMG; tolerance 1e-8; relTol 0.1; smoother GaussSeidel; }}
    "(U|nuTilda)" {{ solver smoothSolver; smoother GaussSeidel; nSweeps 2; tolerance 1e-10; relTol 0.1; }}
}}
SIMPLE {{ nNonOrthogonalCorrectors 0; residualControl {{ p {tolerance}; U {tolerance}; nuTilda {tolerance}; }} }}
relaxationFactors {{ fields {{ p 0.3; }} equations {{ U 0.7; nuTilda 0.7; }} }}
""")


def convert_mesh(case: Path, timeout: float) -> None:
    """gmsh's mesh to OpenFOAM's (`gmshToFoam`), with the patch types the case needs."""
    run_openfoam(case, "gmshToFoam mesh.msh", "log.gmshToFoam", timeout)
    set_patch_types(case, {"frontAndBack": "empty", "airfoil": "wall"})


def solve_case(case: Path, timeout: float) -> dict[str, float]:
    """Mesh conversion (`convert_mesh`), `simpleFoam`; returns the solver's last force coefficients (Cl, Cd, Cm),
    its convergence, iteration count, final residuals and CPU seconds."""
    convert_mesh(case, timeout)
    started = children_cpu_seconds()
    run_openfoam(case, "simpleFoam", "log.simpleFoam", timeout)
    iterations, converged, residuals = read_residuals(case / "log.simpleFoam")
    coefficients = read_force_coefficients(case)
    return {"cl": float(coefficients["Cl"][-1]), "cd": float(coefficients["Cd"][-1]),
            "cm": float(coefficients["CmPitch"][-1]), "converged": float(converged), "iterations": float(iterations),
            **{f"residual_{k}": v for k, v in residuals.items()},
            "solver_cpu_seconds": children_cpu_seconds() - started}


def make(rng: np.random.Generator, n_wall: int = 130, first_cell: float = 1e-3, growth: float = 1.15,
         layers: int = 15, wall_size: float = 0.012, wake_size: float = 0.03, far_field: float = 50.0,
         box: tuple[float, float, float, float] = (-2.0, 4.0, -1.5, 1.5), tolerance: float = 1e-5,
         max_iterations: int = 1500, solver_timeout: float = 600.0, mesh_timeout: float = 60.0,
         section: str | None = None, alpha: float | None = None, reynolds: float | None = None,
         cases: str | None = None, design: dict[str, float] | None = None, inputs_only: bool = False) -> Geometry:
    """One sample: a random section, angle of attack (degrees) and Reynolds number, meshed, solved, read back.
    `section` (a designation such as "0012" or "23012"), `alpha` and `reynolds` fix what they name; `design`
    (the dict `draw_design` makes) fixes all of them. `cases`: a folder where each solved OpenFOAM case is kept
    too (named for its section and flow, with its parameters in `params.json`), as a user's own runs would be.
    `inputs_only`: the meshed case before the solver runs (its points, cells and the free stream, no targets):
    what a model reads to predict this design."""
    from geoop.io.vtk_formats import read_openfoam

    drawn = draw_design(rng) if design is None else dict(design)
    section = NACA(int(drawn["series"]), drawn["thickness"], drawn["camber"], drawn["position"],
                   drawn["design_cl"], bool(drawn["reflex"])) if section is None else NACA.from_digits(str(section))
    alpha = drawn["alpha"] if alpha is None else float(alpha)
    reynolds = drawn["reynolds"] if reynolds is None else float(reynolds)
    speed = reynolds * NU / CHORD
    velocity = speed * np.array([np.cos(np.radians(alpha)), np.sin(np.radians(alpha))])
    outline = section.surface(n_wall)
    with tempfile.TemporaryDirectory(prefix="geoop-airfoil-") as tmp:
        case = Path(tmp)
        mesh_with_gmsh(build_mesh, outline, alpha, far_field, first_cell, growth, layers, wall_size, wake_size,
                       timeout=mesh_timeout, save_as=str(case / "mesh.msh"))
        write_case(case, velocity, alpha, tolerance, max_iterations)
        if inputs_only:
            convert_mesh(case, solver_timeout)
            solved = {}
            volume, wall = read_openfoam(case, time=0), read_openfoam(case, patches="airfoil", time=0)
        else:
            solved = solve_case(case, solver_timeout)
            volume, wall = read_openfoam(case), read_openfoam(case, patches="airfoil")
        if cases is not None and not inputs_only:
            keep_case(case, Path(cases) / f"{section.name.replace(' ', '')}_a{alpha:+.3f}_re{reynolds:.4g}",
                      {"alpha": alpha, "reynolds": reynolds, "u_inf": speed, "ux": velocity[0], "uy": velocity[1],
                       **{k: v for k, v in solved.items() if k in ("cl", "cd", "cm", "converged")}},
                      ignore=("mesh.msh",))
    if volume.dim != 2 or wall.dim != 2:
        raise SolverError("the solved case did not read back as a 2D mesh (one cell thick)")
    used, cells = crop_to_box(volume.points, volume.cells, (box[:2], box[2:]))
    remap = np.full(volume.n_points, -1)
    remap[used] = np.arange(len(used))
    faces = remap[cKDTree(volume.points).query(wall.points)[1][wall.cells["line"]]]
    if (faces < 0).any():
        raise MeshingError("the airfoil reaches outside the sample's box", fix="choose a larger `box`")
    on_airfoil = np.zeros(len(used), dtype=bool)
    on_airfoil[faces.ravel()] = True
    point_data = {"on_airfoil": on_airfoil, "freestream": np.broadcast_to(velocity, (len(used), 2)).copy()}
    cell_data = {}
    if not inputs_only:
        fields = {k: np.asarray(v)[used] for k, v in volume.point_data.items()}
        dynamic = 0.5 * speed**2
        shear = -fields["wallShearStress"]  # OpenFOAM writes the wall's stress on the fluid
        point_data.update({"U": fields["U"], "p": fields["p"], "nut": fields["nut"],
                           "cp": np.where(on_airfoil, fields["p"] / dynamic, 0.0),
                           "cf": np.where(on_airfoil[:, None], shear / dynamic, 0.0)})
        cell_data = {"p": {"line": wall.cell_data["p"]["line"]},
                     "wall_shear": {"line": -wall.cell_data["wallShearStress"]["line"]}}
    parameters = {**section_parameters(section), "alpha": alpha, "reynolds": reynolds, "u_inf": speed, "nu": NU,
                  "chord": CHORD}
    return Geometry(volume.points[used], {**cells, "line": faces}, point_data=point_data, cell_data=cell_data,
                    global_data={**{k: np.array(v) for k, v in {**parameters, **solved}.items()},
                                 "freestream": velocity, "section": np.array(section.name)})


FAMILY = Family(
    name="airfoil2d",
    description=__doc__.strip().splitlines()[0],
    dim=2,
    inputs={"freestream": FieldSpec(2, "m/s", "free-stream velocity, the same at every point")},
    targets={"U": FieldSpec(2, "m/s", "mean velocity"),
             "p": FieldSpec(1, "m^2/s^2", "kinematic pressure (p / rho), 0 in the free stream"),
             "nut": FieldSpec(1, "m^2/s", "turbulent (eddy) viscosity"),
             "cp": FieldSpec(1, "1", "pressure coefficient on the airfoil", mask="on_airfoil"),
             "cf": FieldSpec(2, "1", "skin-friction vector (fluid on wall) on the airfoil", mask="on_airfoil")},
    make=make,
    options={},
    default_n=1000,
    solver="OpenFOAM simpleFoam (Spalart-Allmaras)",
    splits=(0.7, 0.1, 0.2),
    requires=("gmsh", "vtk"),
    openfoam=True,
    forces=ForceSpec(pressure="cp", shear="cf", surface="on_airfoil", freestream="freestream", ref_area=CHORD),
    body="on_airfoil",
    parameters=("series", "thickness", "camber", "position", "design_cl", "reflex", "alpha", "reynolds"),
    designs=DesignSpace(draw_design, {"series": (4.0, 5.0), "thickness": RANGES["thickness"],
                                      "camber": RANGES["camber"], "position": (0.1, 0.7),
                                      "design_cl": RANGES["design_cl"], "reflex": (0.0, 1.0),
                                      "alpha": RANGES["alpha"], "reynolds": RANGES["reynolds"]}),
)

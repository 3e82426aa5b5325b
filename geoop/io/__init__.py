"""File formats: `load(path) -> Geometry` and `save(geometry, path)`, dispatched by extension."""
from functools import partial

from geoop.io import mesh_formats as _mesh
from geoop.io import point_formats as _points
from geoop.io import surface_formats as _surface
from geoop.io import vtk_formats as _vtk
from geoop.io.registry import FORMATS, extensions, load, reader_options, register, save

register([".vtu"], "VTU", _mesh.read_vtu, _mesh.write_vtu, "mesh, point and cell fields")
register([".vtk"], "legacy VTK", _mesh.read_meshio, _mesh.write_vtk, "mesh, point and cell fields")
register([".msh"], "gmsh MSH", _mesh.read_meshio, _mesh.write_msh, "mesh, point and cell fields")
register([".xdmf", ".xmf"], "XDMF", _mesh.read_meshio, _mesh.write_xdmf, "mesh, point and cell fields")
register([".ply"], "PLY", partial(_mesh.read_meshio, file_format="ply"), _mesh.write_ply,
         "points, faces, normals, point fields")
register([".stl"], "STL", _surface.read_surface, _surface.write_surface, "triangle surface", "surface")
register([".obj"], "OBJ", _surface.read_surface, _surface.write_surface, "triangle surface", "surface")
register([".off"], "OFF", _surface.read_surface, _surface.write_surface, "triangle surface", "surface")
register([".glb", ".gltf"], "glTF", _surface.read_surface, _surface.write_surface, "triangle surface", "surface")
register([".npy"], "NPY", _points.read_npy, _points.write_npy, "points, normals", "cloud", ("columns",))
register([".npz"], "NPZ", _points.read_npz, _points.write_npz, "everything", "mesh", ("points_key",))
register([".csv", ".txt", ".tsv"], "CSV", _points.read_csv, _points.write_csv,
         "points, normals, point fields", "cloud", ("columns",))
register([".xyz"], "XYZ", _points.read_xyz, _points.write_xyz, "points, normals", "points")
register([".vtp"], "VTP", _vtk.read_vtp, _vtk.write_vtp, "surface, curves or points, point and cell fields")
register([".vtm", ".vtmb"], "VTM multiblock", _vtk.read_vtm, None, "blocks merged into one mesh", "multiblock",
         ("blocks",))
register([".foam", ".openfoam"], "OpenFOAM case", _vtk.read_openfoam, None, "internal mesh or patches", "case",
         ("patches", "time", "flatten", "cell_to_point"))

__all__ = ["FORMATS", "extensions", "load", "reader_options", "register", "save"]

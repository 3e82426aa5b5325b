"""Numbers people judge a prediction by, beyond the fields' errors: force coefficients from surface fields."""
from geoop.metrics.forces import ForceCoefficients, ForceSpec, body_faces, force_coefficients, force_errors

__all__ = ["ForceCoefficients", "ForceSpec", "body_faces", "force_coefficients", "force_errors"]

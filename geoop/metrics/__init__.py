"""Numbers people judge a prediction by, beyond the fields' errors: force coefficients from surface fields."""
from geoop.metrics.forces import ForceCoefficients, body_faces, force_coefficients

__all__ = ["ForceCoefficients", "body_faces", "force_coefficients"]

"""actiscope's version, apart from the package root: the root re-exports the Python API (actiscope.api),
and the layers below it (the model package records the version) must not import what is above them."""

__version__ = "0.1.0"

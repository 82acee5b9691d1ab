"""Recording values on artifacts as ML Metadata custom properties."""

from __future__ import annotations

from collections.abc import Mapping

from tfx import types


def record_properties(artifact: types.Artifact, values: Mapping[str, object]) -> None:
    """Each value as an int, float or string custom property, by its Python type."""
    for name, value in values.items():
        if isinstance(value, bool | int):
            artifact.set_int_custom_property(name, int(value))
        elif isinstance(value, float):
            artifact.set_float_custom_property(name, value)
        else:
            artifact.set_string_custom_property(name, str(value))

"""Number parameters refused with their allowed range, before QGIS's own check.

QGIS 3.22 refuses a number outside a parameter's range with "Incorrect parameter value
for STRIDE", which says neither why nor what would do, and takes a fraction for an integer
parameter without a word (``PATCH_SIZE=16.5`` ran as 17). SatPluginAlgorithm's
``checkParameterValues`` asks :func:`number_problem` first, so the dialog, the panel,
models and ``qgis_process`` all say what is allowed.
"""
import math

from qgis.core import QgsProcessingParameterNumber

# QGIS's "no bound" is the largest double.
_UNBOUNDED = 1e300


def number_problem(definition, value) -> str:
    """The sentence refusing ``value`` for the number parameter ``definition``; "" when it is fine
    or not a plain number (an expression, a layer property: QGIS evaluates and checks those)."""
    if not isinstance(definition, QgsProcessingParameterNumber) or value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str) and not value.strip():
        return ""
    if not isinstance(value, (str, int, float)):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""  # not a number at all: QGIS's own message names the parameter
    except OverflowError:  # an int beyond any double
        number = math.inf
    name = definition.name()
    if not math.isfinite(number):
        return f"{name} must be a finite number; got {value}."
    if definition.dataType() == QgsProcessingParameterNumber.Integer and not number.is_integer():
        return f"{name} must be a whole number; got {value}."
    low = definition.minimum() if definition.minimum() > -_UNBOUNDED else None
    high = definition.maximum() if definition.maximum() < _UNBOUNDED else None
    if (low is not None and number < low) or (high is not None and number > high):
        return f"{name} must be {_range_words(low, high)}; got {value}."
    return ""


def _range_words(low, high) -> str:
    if low is not None and high is not None:
        return f"between {_number_text(low)} and {_number_text(high)}"
    return f"at least {_number_text(low)}" if low is not None else f"at most {_number_text(high)}"


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"

"""Input widgets made from an algorithm's own parameter definitions.

Choices, ranges and defaults come from the registered algorithm, so the dock cannot
drift from what the toolbox and qgis_process accept.
"""
from qgis.core import QgsApplication, QgsProcessingParameterNumber
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox


def definition(algorithm_id, name):
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    if algorithm is None:
        raise RuntimeError(f"{algorithm_id} is not registered; the plugin's provider must be loaded first.")
    parameter = algorithm.parameterDefinition(name)
    if parameter is None:
        raise RuntimeError(f"{algorithm_id} has no parameter {name}.")
    return parameter


def enum_combo(algorithm_id, name, tooltip=""):
    """A combo of the enum's options; ``currentIndex()`` is the parameter value."""
    parameter = definition(algorithm_id, name)
    combo = QComboBox()
    combo.addItems(parameter.options())
    default = parameter.defaultValue()
    if isinstance(default, (list, tuple)):
        default = default[0] if default else 0
    combo.setCurrentIndex(int(default or 0))
    combo.setToolTip(tooltip or parameter.description())
    return combo


def number_spin(algorithm_id, name, tooltip="", decimals=2, maximum=None):
    """A spin box with the parameter's range and default."""
    parameter = definition(algorithm_id, name)
    integer = parameter.dataType() == QgsProcessingParameterNumber.Integer
    spin = QSpinBox() if integer else QDoubleSpinBox()
    if not integer:
        spin.setDecimals(decimals)
    # QGIS uses the double's extreme values for "no bound"; a spin box needs finite ones.
    bound = 2**31 - 1 if integer else 1e9
    low = max(parameter.minimum(), -bound)
    high = min(parameter.maximum() if maximum is None else maximum, bound)
    kind = int if integer else float
    spin.setRange(kind(low), kind(high))
    default = parameter.defaultValue()
    spin.setValue(kind(default) if default is not None else kind(0))
    spin.setToolTip(tooltip or parameter.description())
    return spin


def bool_check(algorithm_id, name, text=None):
    parameter = definition(algorithm_id, name)
    check = QCheckBox(text or parameter.description())
    check.setChecked(bool(parameter.defaultValue()))
    return check

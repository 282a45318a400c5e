"""Super-resolution of Sentinel-2 revisits with ONNX models (see :mod:`.runner`)."""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the step's dependencies.
EXPORTS = {
    "DEFAULT_MODEL": "runner",
    "LoadedModel": "session",
    "ModelContract": "contract",
    "ModelContractError": "contract",
    "PROVIDER_CHOICES": "session",
    "ShippedSharpener": "date_sharpener",
    "SuperResolveOptions": "options",
    "SuperResolveResult": "runner",
    "load_model": "session",
    "metadata_props": "contract",
    "run": "runner",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)

"""Super-resolution of Sentinel-2 revisits with ONNX models (see :mod:`.run`)."""
from .contract import ModelContract, ModelContractError, metadata_props
from .run import DEFAULT_MODEL, SuperResolveResult, super_resolve
from .session import PROVIDER_CHOICES, load_model

__all__ = ["DEFAULT_MODEL", "ModelContract", "ModelContractError", "PROVIDER_CHOICES", "SuperResolveResult",
           "load_model", "metadata_props", "super_resolve"]

"""Super-resolution of Sentinel-2 revisits with ONNX models (see :mod:`.run`)."""
from .contract import ModelContract, ModelContractError, metadata_props
from .options import SuperResolveOptions
from .run import DEFAULT_MODEL, SuperResolveResult, run
from .session import PROVIDER_CHOICES, LoadedModel, load_model

__all__ = ["DEFAULT_MODEL", "LoadedModel", "ModelContract", "ModelContractError", "PROVIDER_CHOICES",
           "SuperResolveOptions", "SuperResolveResult", "load_model", "metadata_props", "run"]

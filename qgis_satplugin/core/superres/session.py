"""Loading a model: its contract, its input shape, and the execution provider that really runs.

ONNX Runtime lists the providers its build contains, not the ones that work here: the
CUDA provider of ``onnxruntime-gpu`` is listed on a machine without a GPU, and a session
asked for it quietly runs on the CPU. So the provider is read back from the session
after creation, and every fallback is said in one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SatPluginError
from ..feedback import Feedback
from .contract import ModelContract, ModelContractError

# User-facing choice -> ONNX Runtime provider name.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt", "directml", "coreml")
# "auto" tries these in order. TensorRT is left out: it compiles an engine per input
# shape on first use (minutes), which is worth it only when asked for.
AUTO_ORDER = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
CPU = "CPUExecutionProvider"
LABELS = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA", "TensorrtExecutionProvider": "TensorRT",
          "DmlExecutionProvider": "DirectML", "CoreMLExecutionProvider": "CoreML"}


def label(provider: str) -> str:
    """The name people know a provider by (``DmlExecutionProvider`` -> ``DirectML``)."""
    return LABELS.get(provider, provider.replace("ExecutionProvider", ""))


@dataclass
class LoadedModel:
    session: object  # onnxruntime.InferenceSession
    contract: ModelContract
    provider: str  # the provider that runs the first node: what actually executes
    input_name: str
    path: Path

    @property
    def provider_label(self) -> str:
        return label(self.provider)


def _provider_list(choice: str, available: list, feedback: Feedback) -> list:
    choice = (choice or "auto").strip().lower()
    if choice not in PROVIDER_CHOICES:
        raise SatPluginError(f"PROVIDER must be one of {', '.join(PROVIDER_CHOICES)}, got {choice!r}.")
    if choice == "auto":
        preferred = [p for p in AUTO_ORDER if p in available]
        return preferred[:1] + [CPU]
    wanted = PROVIDERS[choice]
    if wanted == CPU:
        return [CPU]
    if wanted not in available:
        feedback.log(f"The {label(wanted)} provider is not in this ONNX Runtime build "
                     f"(it has {', '.join(label(p) for p in available)}); running on the CPU instead.")
        return [CPU]
    return [wanted, CPU]


def load_model(path, provider: str = "auto", feedback: Feedback | None = None, threads: int = 0) -> LoadedModel:
    """Open ``path`` with the best working provider for ``provider``; check its contract."""
    import onnxruntime as ort

    feedback = Feedback.of(feedback)

    path = Path(path)
    if not path.is_file():
        raise SatPluginError(f"The model {path} does not exist.")
    providers = _provider_list(provider, ort.get_available_providers(), feedback)
    # Trying a GPU provider on a machine without one makes ORT print a screen of library
    # errors: for "auto" that is expected, and our one-line message says it; when a GPU
    # provider was asked for by name, ORT's details (which library is missing) are kept.
    ort.set_default_logger_severity(4 if (provider or "auto").strip().lower() == "auto" else 2)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's own provider warnings are replaced by ours
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types
        if providers == [CPU]:
            raise SatPluginError(f"ONNX Runtime cannot load {path.name}: {exc}") from exc
        feedback.log(f"The {label(providers[0])} provider failed to load ({_first_line(exc)}); "
                     "running on the CPU instead.")
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=[CPU])
        except Exception as exc2:
            raise SatPluginError(f"ONNX Runtime cannot load {path.name}: {exc2}") from exc2
    running = session.get_providers()[0]
    if running != providers[0]:
        feedback.log(f"The {label(providers[0])} provider could not start here (no usable GPU or "
                     f"driver); running on {label(running)} instead.")
    meta = session.get_modelmeta().custom_metadata_map
    contract = ModelContract.from_metadata(meta, path.name)
    input_name = _check_signature(session, contract, path.name)
    feedback.log(f"Model: {contract.describe()}; provider: {label(running)}.")
    return LoadedModel(session, contract, running, input_name, path)


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _check_signature(session, contract: ModelContract, name: str) -> str:
    """The model's input must be [B, (N,) C, H, W] with dynamic H and W and C input bands."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelContractError(f"{name} has {len(inputs)} inputs; a super-resolution model takes one tensor.")
    shape = list(inputs[0].shape)
    rank = 5 if contract.multi_frame else 4
    if len(shape) != rank:
        layout = "[batch, revisits, bands, height, width]" if contract.multi_frame else "[batch, bands, height, width]"
        raise ModelContractError(f"{name}'s input has rank {len(shape)}; a {contract.model_type} model takes {layout}.")
    bands = shape[-3]
    if isinstance(bands, int) and bands != len(contract.input_bands):
        raise ModelContractError(
            f"{name}'s input has {bands} bands but its metadata lists {len(contract.input_bands)} input_bands.")
    if any(isinstance(d, int) for d in shape[-2:]):
        raise ModelContractError(
            f"{name} has a fixed input size {shape[-2:]}; this runtime tiles rasters of any size and needs "
            "dynamic height and width axes (export with dynamic_axes).")
    if contract.multi_frame and isinstance(shape[1], int) and contract.revisits not in (None, shape[1]):
        raise ModelContractError(f"{name}'s input takes {shape[1]} revisits but its metadata says {contract.revisits}.")
    if contract.multi_frame and isinstance(shape[1], int) and contract.revisits is None:
        raise ModelContractError(f"{name}'s metadata says dynamic revisits but its input takes exactly {shape[1]}.")
    outputs = session.get_outputs()
    out_bands = outputs[0].shape[1] if len(outputs[0].shape) == 4 else None
    if isinstance(out_bands, int) and out_bands != len(contract.output_bands):
        raise ModelContractError(
            f"{name}'s output has {out_bands} bands but its metadata lists {len(contract.output_bands)} output_bands.")
    return inputs[0].name

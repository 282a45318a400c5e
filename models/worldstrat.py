"""WorldStrat's HighRes-net and SRCNN, re-implemented so that its published checkpoints load.

WorldStrat (Cornebise, Oršolić and Kalaitzis, NeurIPS 2022 Datasets and Benchmarks;
github.com/worldstrat/worldstrat) trains two baselines with PyTorch Lightning. This module
rebuilds both networks from the description of their layers (``src/modules.py`` of that
repository: ``SRCNN``, ``HighResNet``, ``DoubleConv2d``, ``ResidualBlock``, ``FusionBlock``,
``RecursiveFusion``, ``PixelShuffleBlock``), with the same attribute names and layer indices,
so that the ``state_dict`` of a WorldStrat checkpoint (less its ``backbone.`` prefix, the
Lightning module's attribute) loads *strictly*. The code is ours; only the parameter names and
shapes follow theirs.

What WorldStrat does, and what this module keeps or changes
-----------------------------------------------------------

Input (``src/datasets.py``, ``make_transforms_JIF``; ``src/datasources.py``):

- 12 Sentinel-2 L2A bands, in the order B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12,
  downloaded through Sentinel Hub (eo-learn, default units: reflectance, float32, Sentinel
  Hub's harmonised values), i.e. reflectance = 0.0001 x harmonised L2A DN;
- normalised per band with torchvision's ``Normalize(mean=JIF_S2_MEAN, std=JIF_S2_STD)``, i.e.
  ``(reflectance - mean) / std`` -- exactly the plugin contract's ``input_scaling`` with
  ``dn_scale = 0.0001`` and ``dn_offset = 0``, so nothing needs converting in the wrapper.
  (The constants, :data:`JIF_S2_MEAN` and :data:`JIF_S2_STD`, are WorldStrat's; they look
  like statistics of already-transformed data -- B12's "median" is negative -- but they are
  what its training applied, so they are what a converted model needs.)
- the area (about 158 px) resized to 160 x 160 and cut into 50 x 50 chips; revisits, 8 by
  default, ranked by |days from the SPOT acquisition| rank + cloud-cover rank (both weights 1,
  ``dataset_generation/CatalogueFilter.py``), the best first.

Output: RGB (red, green, blue; the SPOT bands 1-3 of its ``_ps.tiff`` targets, compared with
Sentinel-2 B04 B03 B02 by its bicubic baseline) in SPOT 6/7 12-bit DN / 10000
(``SPOT_MAX_EXPECTED_VALUE_12_BIT``). The network upsamples by ``zoom_factor`` (2) with a
PixelShuffle and then *resizes bilinearly to a fixed size* (``kornia`` ``Resize`` to
``output_size``, 156 x 156 for a 50 x 50 chip, so 3.12x overall), and returns
``[batch, 1, 3, h, w]``.

Changes here: **the fixed-size resize is dropped** (the output is the PixelShuffle stage,
``[batch, 3, H*zoom, W*zoom]`` for any H and W: 5 m pixels for 10 m input), and the empty
revisit axis of the output is dropped. Everything before the resize is unchanged, so the
result equals WorldStrat's own network output before its resize. Resample the result to a
finer grid afterwards if the SPOT-like 3.2 m grid is wanted.

Unused weights kept for strict loading: the mask encoder (WorldStrat's forward never passes
masks to it; ``--use_masks`` concatenates them as extra input bands instead), and, in
HighRes-net, SRCNN's fusion layers (``doubleconv2d``, ``residualblocks``), which its
constructor builds and then replaces with the recursive fusion.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from qgis_satplugin.core.sentinel2 import L2A_BANDS, REFLECTANCE_SCALE

# WorldStrat's channel order (S2_ALL_BANDS 1..12 of its L2A_data.tiff) is the 12 L2A bands
# in ESA's order, L2A_BANDS.
# lr_bands_to_use="true_color": bands 4, 3, 2 of that file.
TRUE_COLOR_BANDS = ("B04", "B03", "B02")
TRUE_COLOR_INDEX = (3, 2, 1)

# WorldStrat's JIF_S2_MEAN / JIF_S2_STD (src/datasources.py), per band in reflectance units.
JIF_S2_MEAN = (0.0008, 0.0117, 0.0211, 0.0198, 0.0671, 0.1274, 0.1449, 0.1841, 0.1738, 0.1803, 0.0566, -0.0559)
JIF_S2_STD = (0.0892, 0.0976, 0.1001, 0.1169, 0.1154, 0.1066, 0.1097, 0.1151, 0.1122, 0.1176, 0.1298, 0.1176)

OUTPUT_BANDS = ("red", "green", "blue")
OUTPUT_UNITS = "SPOT 6/7 12-bit DN / 10000"
REFLECTANCE_DN_SCALE = REFLECTANCE_SCALE  # Sentinel-2 L2A: reflectance = 0.0001 x (harmonised) DN

# The published training runs (Training.ipynb, src/utils/reproduce_benchmark.sh) and the
# Lightning module's defaults (src/lightning_modules.py, add_model_specific_args).
PUBLISHED_HPARAMS = {
    "hidden_channels": 128,
    "residual_layers": 1,
    "kernel_size": 3,
    "sr_kernel_size": 1,
    "zoom_factor": 2,
    "revisits": 8,
    "in_channels": 12,
    "out_channels": 3,
    "input_size": (160, 160),
    "output_size": (500, 500),
    "chip_size": (50, 50),
}


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    # WorldStrat: padding="same", padding_mode="reflect", bias (no batch norm) everywhere.
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", padding_mode="reflect")


class DoubleConv(nn.Module):
    """conv, (norm), PReLU, dropout, conv, (norm), PReLU, dropout: indices 0..7 of ``doubleconv2d``.

    WorldStrat never enables batch norm in these models, so the norm slots are identities
    and hold no weights; dropout is inactive in eval mode.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.doubleconv2d = nn.Sequential(
            _conv(in_channels, out_channels, kernel_size), nn.Identity(), nn.PReLU(), nn.Dropout(0.5),
            _conv(out_channels, out_channels, kernel_size), nn.Identity(), nn.PReLU(), nn.Dropout(0.5),
        )

    def forward(self, x):
        return self.doubleconv2d(x)


class Residual(nn.Module):
    """x + DoubleConv(x)."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.residualblock = DoubleConv(channels, channels, kernel_size)

    def forward(self, x):
        return x + self.residualblock(x)


class PairFusion(nn.Module):
    """Fuses the first half of the revisits with the second half, pairwise: R -> R/2."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.fuse = nn.Sequential(
            Residual(2 * channels, kernel_size),
            _conv(2 * channels, channels, kernel_size), nn.Identity(), nn.PReLU(),
        )

    def forward(self, x):  # [B, R, C, H, W], R even
        half = x.shape[1] // 2
        pairs = torch.cat([x[:, :half], x[:, half:]], dim=2)  # [B, R/2, 2C, H, W]
        fused = self.fuse(pairs.flatten(0, 1))
        return fused.unflatten(0, (-1, half))


class RecursiveFusion(nn.Module):
    """One PairFusion applied ceil(log2 R) times (the *same* weights at every level)."""

    def __init__(self, channels: int, kernel_size: int, revisits: int):
        super().__init__()
        self.revisits = revisits
        self.levels = math.ceil(math.log2(revisits)) if revisits > 1 else 0
        self.padded_revisits = 2 ** self.levels
        block = PairFusion(channels, kernel_size)
        # Registered under every index, as WorldStrat does, so its state_dict keys match.
        self.fusion = nn.Sequential(*(block for _ in range(self.levels)))

    def forward(self, x):  # [B, R, C, H, W] -> [B, C, H, W]
        # The revisit axis is static in an export (the contract fixes the count), so a trace uses
        # the constructor's count; eager calls follow the input, as WorldStrat does.
        count = self.revisits if torch.jit.is_tracing() else x.shape[1]
        missing = self.padded_revisits - count
        if missing > 0:  # black revisits up to a power of two, as WorldStrat pads
            # Zeros shaped like one revisit, written as a product so that the ONNX graph keeps
            # H and W dynamic (a traced zeros_like is frozen to the example's size). A NaN in
            # revisit 0 would reach the output through the fusion anyway.
            black = x[:, :1] * 0.0
            x = torch.cat([x] + [black] * missing, dim=1)
        return self.fusion(x)[:, 0]


class PixelShuffleUpsampler(nn.Module):
    """PixelShuffle(zoom), then two ``sr_kernel_size`` convolutions with PReLU (``upsample`` 0..6)."""

    def __init__(self, in_channels: int, out_channels: int, zoom_factor: int, sr_kernel_size: int):
        super().__init__()
        if in_channels % zoom_factor ** 2:
            raise ValueError(f"hidden_channels {in_channels} is not divisible by zoom_factor^2 = {zoom_factor ** 2}")
        mid = in_channels // zoom_factor ** 2
        self.upsample = nn.Sequential(
            nn.PixelShuffle(zoom_factor),
            _conv(mid, mid, sr_kernel_size), nn.Identity(), nn.PReLU(),
            _conv(mid, out_channels, sr_kernel_size), nn.Identity(), nn.PReLU(),
        )

    def forward(self, x):
        return self.upsample(x)


class WorldStratSRCNN(nn.Module):
    """WorldStrat's SRCNN: per-revisit encoder, revisits stacked as channels, residual blocks, x zoom.

    ``forward``: ``[B, revisits, in_channels, H, W]`` normalised input ->
    ``[B, out_channels, H*zoom, W*zoom]`` (no fixed-size resize, see the module docstring).
    """

    arch = "srcnn"

    def __init__(self, in_channels: int = 12, revisits: int = 8, hidden_channels: int = 128,
                 out_channels: int = 3, kernel_size: int = 3, residual_layers: int = 1,
                 zoom_factor: int = 2, sr_kernel_size: int = 1, mask_channels: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.revisits = revisits
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.residual_layers = residual_layers
        self.zoom_factor = zoom_factor
        self.sr_kernel_size = sr_kernel_size
        self.mask_channels = mask_channels

        self.encoder = DoubleConv(in_channels, hidden_channels, kernel_size)
        # Unused at inference; index 0 is WorldStrat's (weightless) one-hot layer.
        self.mask_encoder = nn.Sequential(nn.Identity(), DoubleConv(mask_channels, 1, 3), nn.Sigmoid())
        self.doubleconv2d = DoubleConv(hidden_channels * revisits, hidden_channels, kernel_size)
        self.residualblocks = nn.Sequential(*(Residual(hidden_channels, kernel_size) for _ in range(residual_layers)))
        self.fusion = nn.Sequential(self.doubleconv2d, self.residualblocks)
        self.sr = PixelShuffleUpsampler(hidden_channels, out_channels, zoom_factor, sr_kernel_size)

    def encode(self, x):  # [B, R, C, H, W] -> [B, R, hidden, H, W]
        return self.encoder(x.flatten(0, 1)).unflatten(0, (-1, x.shape[1]))

    def fuse(self, encoded):  # revisits as channels, revisit-major: channel r*hidden + c
        return self.fusion(encoded.flatten(1, 2))

    def forward(self, x):
        return self.sr(self.fuse(self.encode(x)))

    def _lr_convs(self) -> int:
        """3x3 (kernel_size) convolutions at the input resolution on an output pixel's path."""
        return 2 + 2 + 2 * self.residual_layers

    def receptive_field(self) -> int:
        """Input pixels either side of an output pixel's own input pixel that can change it."""
        lr = self._lr_convs() * (self.kernel_size // 2)
        hr = 2 * (self.sr_kernel_size // 2)  # after the PixelShuffle, in output pixels
        return lr + math.ceil(hr / self.zoom_factor)


class WorldStratHighResNet(WorldStratSRCNN):
    """WorldStrat's HighRes-net: SRCNN's encoder and upsampler, recursive pairwise fusion of revisits.

    The revisits are fused first half against second half (revisit i with i + R/2), then
    again, ceil(log2 R) times with shared weights; a revisit count that is not a power of two
    is padded with black (zero) revisits at the end, as WorldStrat does.
    """

    arch = "highresnet"

    def __init__(self, **kws):
        super().__init__(**kws)
        self.fusion = RecursiveFusion(self.hidden_channels, self.kernel_size, self.revisits)

    def fuse(self, encoded):
        return self.fusion(encoded)

    def _lr_convs(self) -> int:
        return 2 + 3 * self.fusion.levels


ARCHITECTURES = {"srcnn": WorldStratSRCNN, "highresnet": WorldStratHighResNet}


class WorldStratForContract(nn.Module):
    """A WorldStrat network behind the plugin's runtime contract.

    Input: ``[batch, revisits, bands, H, W]`` (or ``[batch, bands, H, W]`` when
    ``single_image``, for a one-revisit SRCNN), float32, normalised as
    ``((DN * 0.0001 + 0) - mean) / std`` with WorldStrat's per-band mean and std: the same
    normalisation WorldStrat trains with, so the network receives exactly what it expects.
    Output: ``[batch, 3, H*zoom, W*zoom]``, red, green, blue in SPOT DN / 10000. H and W are free.
    """

    def __init__(self, net: WorldStratSRCNN, single_image: bool = False):
        super().__init__()
        if single_image and net.revisits != 1:
            raise ValueError("a single-image wrapper needs a network trained on 1 revisit")
        self.net = net
        self.single_image = single_image

    @property
    def scale(self) -> int:
        return self.net.zoom_factor

    def forward(self, x):
        if self.single_image:
            x = x.unsqueeze(1)
        return self.net(x)


def input_bands_for(in_channels: int) -> tuple:
    """WorldStrat's band list for a network with ``in_channels`` input bands (12 or 3)."""
    if in_channels == len(L2A_BANDS):
        return L2A_BANDS
    if in_channels == len(TRUE_COLOR_BANDS):
        return TRUE_COLOR_BANDS
    raise ValueError(
        f"the network takes {in_channels} input bands; WorldStrat's L2A models take 12 (all bands) or "
        "3 (true colour), and 13 or more means it was trained with --use_masks or --use_reference_frame, "
        "which this converter cannot feed.")


def input_scaling_for(bands) -> dict:
    """The contract's ``input_scaling`` for WorldStrat's normalisation of ``bands``."""
    index = [L2A_BANDS.index(b) for b in bands]
    return {
        "dn_scale": REFLECTANCE_DN_SCALE,
        "dn_offset": 0.0,
        "mean": [JIF_S2_MEAN[i] for i in index],
        "std": [JIF_S2_STD[i] for i in index],
    }


def worldstrat_sized_highresnet(revisits: int = 8, bands: int = 12, seed: int = 0, **overrides) -> WorldStratForContract:
    """A HighRes-net of WorldStrat's published size (hidden 128, 1 residual layer, x2) with random weights.

    For benchmarks: its cost per pixel is that of the released model. ``overrides`` change
    any constructor argument (``hidden_channels=...``).
    """
    torch.manual_seed(seed)
    kws = dict(in_channels=bands, revisits=revisits, hidden_channels=PUBLISHED_HPARAMS["hidden_channels"],
               out_channels=3, kernel_size=PUBLISHED_HPARAMS["kernel_size"],
               residual_layers=PUBLISHED_HPARAMS["residual_layers"], zoom_factor=PUBLISHED_HPARAMS["zoom_factor"],
               sr_kernel_size=PUBLISHED_HPARAMS["sr_kernel_size"])
    kws.update(overrides)
    return WorldStratForContract(WorldStratHighResNet(**kws)).eval()


def used_parameter_count(net: WorldStratSRCNN) -> int:
    """Parameters on the inference path (HighRes-net's unused SRCNN fusion and the mask encoder excluded)."""
    modules = [net.encoder, net.sr]
    modules.append(net.fusion.fusion[0] if isinstance(net, WorldStratHighResNet) and net.fusion.levels
                   else net.fusion)
    return sum(p.numel() for m in modules for p in m.parameters())

"""The two super-resolution networks: multi-frame fusion and a light single-image one.

Both honour the runtime's contract (``qgis_satplugin/core/superres/contract.py``):

- input: normalised reflectance, ``(reflectance - mean) / std`` per band, as
  ``[batch, revisits, bands, H, W]`` (multi-frame) or ``[batch, bands, H, W]`` (single);
- output: reflectance itself, ``[batch, bands, H*scale, W*scale]``. Each network undoes the
  normalisation inside, upsamples the (reference) image bilinearly and adds a learned
  residual, so an untrained network is exactly bilinear upsampling and training only has to
  learn the missing detail;
- H and W are free: every layer is a 3x3 convolution at the input resolution (replicate
  padding, so tile edges are not darkened by zeros) followed by a PixelShuffle, and there is
  no resize to a fixed size anywhere.

Because every convolution runs at the input resolution and PixelShuffle maps each input
pixel to its own ``scale x scale`` block, an output pixel depends on the input pixels within
(number of 3x3 convolutions on its path) of the input pixel it lies in. The bilinear base
reaches 1 pixel. ``receptive_field`` reports the larger of the two, in input pixels.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with a skip: two 3x3 convolutions, so 2 pixels of receptive field."""

    convs = 2

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class _Reflectance(nn.Module):
    """Holds the normalisation so that the networks can undo it (buffers go into the ONNX file)."""

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def base(self, normalised, scale: int):
        """Bilinear upsampling of the de-normalised image: the residual's starting point."""
        reflectance = normalised * self.std + self.mean
        return F.interpolate(reflectance, scale_factor=scale, mode="bilinear", align_corners=False)


def _zero_last(conv: nn.Conv2d) -> None:
    # The residual starts at zero, so the untrained network is plain bilinear upsampling.
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


class SingleImageSR(_Reflectance):
    """A few 3x3 convolutions and a PixelShuffle: a residual over bilinear upsampling."""

    def __init__(self, mean, std, bands: int = 4, scale: int = 2, channels: int = 32, depth: int = 4):
        super().__init__(mean, std)
        if depth < 2:
            raise ValueError("depth counts every convolution, first and last included: at least 2")
        self.scale = scale
        layers = [conv3x3(bands, channels), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [conv3x3(channels, channels), nn.ReLU()]
        last = conv3x3(channels, bands * scale * scale)
        _zero_last(last)
        layers += [last, nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        self.depth = depth

    @property
    def receptive_field(self) -> int:
        return max(self.depth, 1)

    def forward(self, image):
        # The residual is learned in normalised units and scaled back by std per band.
        return self.base(image, self.scale) + self.body(image) * self.std


class MultiFrameSR(_Reflectance):
    """Multi-frame fusion in the HighRes-net family, for a fixed number of revisits.

    1. Encode: each revisit, stacked with the reference (revisit 0) as channels, goes
       through one shared encoder, so every code says how that date differs from the reference.
    2. Fuse: the codes are merged two by two, revisit i with revisit i + n/2, by one shared
       fusion block, halving the stack until one code is left (log2(N) levels; a Python loop
       over a fixed N, unrolled when traced for ONNX). Each merge is residual on its first
       operand, so a merge of two identical codes is close to the identity: a stack padded by
       repeating revisits degrades gracefully (training shows it such stacks).
    3. Decode: two convolutions to ``bands * scale**2`` channels, then PixelShuffle; the result
       is a residual (in normalised units, scaled by std) over the bilinear upsampling of the
       reference.
    """

    def __init__(self, mean, std, bands: int = 4, revisits: int = 4, scale: int = 2, channels: int = 32,
                 encoder_blocks: int = 2):
        super().__init__(mean, std)
        if revisits < 1 or revisits & (revisits - 1):
            raise ValueError(f"revisits must be a power of two, got {revisits}")
        self.revisits, self.scale, self.channels = revisits, scale, channels
        self.encoder = nn.Sequential(
            conv3x3(2 * bands, channels), nn.ReLU(),
            *[ResidualBlock(channels) for _ in range(encoder_blocks)],
        )
        self.fuse_in = conv3x3(2 * channels, channels)
        self.fuse_out = conv3x3(channels, channels)
        last = conv3x3(channels, bands * scale * scale)
        _zero_last(last)
        self.decoder = nn.Sequential(conv3x3(channels, channels), nn.ReLU(), last, nn.PixelShuffle(scale))
        self._encoder_convs = 1 + ResidualBlock.convs * encoder_blocks
        self._levels = revisits.bit_length() - 1

    @property
    def receptive_field(self) -> int:
        convs = self._encoder_convs + 2 * self._levels + 2
        return max(convs, 1)

    def _fuse(self, a, b):
        return a + self.fuse_out(F.relu(self.fuse_in(torch.cat([a, b], dim=1))))

    def forward(self, stack):
        batch, count, bands, height, width = stack.shape
        reference = stack[:, 0]
        pairs = torch.cat([stack, reference.unsqueeze(1).expand_as(stack)], dim=2)
        codes = self.encoder(pairs.reshape(batch * self.revisits, 2 * bands, height, width))
        codes = codes.reshape(batch, self.revisits, self.channels, height, width)
        n = self.revisits
        while n > 1:  # fixed trip count: unrolled in the ONNX graph
            half = n // 2
            a = codes[:, :half].reshape(batch * half, self.channels, height, width)
            b = codes[:, half:n].reshape(batch * half, self.channels, height, width)
            codes = self._fuse(a, b).reshape(batch, half, self.channels, height, width)
            n = half
        return self.base(reference, self.scale) + self.decoder(codes[:, 0]) * self.std


class BandSharpener(_Reflectance):
    """Sharpens the coarse bands of one image on its own grid (DSen2-style, scale 1).

    Input: every band, normalised, on one grid (the coarse ones resampled there); output: the
    coarse bands in reflectance, as their input plus a learned residual, so an untrained
    network returns its input. A stem convolution, residual blocks, a last convolution.
    ``consistent`` (the runtime's PRESERVE_REFLECTANCE, in torch) is applied in training only:
    the runtime applies it itself, tile-exactly.
    """

    def __init__(self, mean, std, outputs, channels: int = 48, blocks: int = 4):
        super().__init__(mean, std)
        self.outputs = list(outputs)  # channel positions of the coarse bands in the input
        self.body = nn.Sequential(conv3x3(len(mean), channels), nn.ReLU(),
                                  *[ResidualBlock(channels) for _ in range(blocks)])
        self.last = conv3x3(channels, len(self.outputs))
        _zero_last(self.last)
        self._convs = 2 + ResidualBlock.convs * blocks

    @property
    def receptive_field(self) -> int:
        return self._convs

    def forward(self, image):
        index = self.outputs
        base = image[:, index] * self.std[:, index] + self.mean[:, index]
        return base + self.last(self.body(image)) * self.std[:, index]


def consistent(output, base, factor: int):
    """``output`` corrected so that its ``factor`` x ``factor`` block means are those of ``base``."""
    residual = F.avg_pool2d(base, factor) - F.avg_pool2d(output, factor)
    return output + F.interpolate(residual, scale_factor=factor, mode="nearest")


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(arch: str, mean, std, *, bands: int = 4, scale: int = 2, revisits: int = 4, **options) -> nn.Module:
    """The network for ``arch`` (``multiframe`` or ``single``) with its normalisation."""
    if arch == "multiframe":
        return MultiFrameSR(mean, std, bands=bands, revisits=revisits, scale=scale, **options)
    if arch == "single":
        return SingleImageSR(mean, std, bands=bands, scale=scale, **options)
    raise ValueError(f"unknown arch {arch!r}: expected 'multiframe' or 'single'")

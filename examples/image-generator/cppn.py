"""A CPPN: a small MLP that maps each pixel's coordinates plus a latent vector to a colour.

Its weights are fixed (drawn once from a constant seed), not trained; the seed of a prediction picks the
latent vector, and so the picture. Images of any size come from the same function sampled more finely.
"""

from __future__ import annotations

import struct
import zlib

import torch
from torch import nn

LATENT = 8
WEIGHT_SEED = 20240229


class CPPN(nn.Module):
    def __init__(self, hidden: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.first = nn.Linear(3 + LATENT, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, 3)
        generator = torch.Generator().manual_seed(WEIGHT_SEED)
        with torch.no_grad():
            for layer in [self.first, *self.hidden, self.out]:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 2.0 / layer.in_features**0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.first(features))
        for i, layer in enumerate(self.hidden):
            # Alternating sine and tanh layers give both stripes and smooth blobs.
            x = torch.sin(layer(x)) if i % 2 == 0 else torch.tanh(layer(x))
        return torch.sigmoid(self.out(x))


@torch.inference_mode()
def render(model: CPPN, seed: int, width: int, height: int, device: str = "cpu") -> torch.Tensor:
    """An (height, width, 3) uint8 image."""
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(LATENT, generator=generator).to(device)
    zoom = 2.0 + 4.0 * torch.rand(1, generator=generator).item()
    scale = zoom / max(width, height)
    ys = (torch.arange(height, device=device) - (height - 1) / 2) * 2 * scale
    xs = (torch.arange(width, device=device) - (width - 1) / 2) * 2 * scale
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    r = torch.sqrt(x * x + y * y)
    coords = torch.stack([x, y, r], dim=-1).reshape(-1, 3)
    features = torch.cat([coords, latent.expand(coords.shape[0], LATENT)], dim=1)
    rgb = model(features).reshape(height, width, 3)
    return (rgb * 255).round().to(torch.uint8).cpu()


def png_bytes(image: torch.Tensor) -> bytes:
    """Encode an (height, width, 3) uint8 image as PNG; the same pixels always give the same bytes."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + row.numpy().tobytes() for row in image)  # filter type 0 on every scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")

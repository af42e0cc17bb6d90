import tempfile
from pathlib import Path as LocalPath

import torch
from cog import BasePredictor, Input, Path

from cppn import CPPN, png_bytes, render


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = CPPN().eval().to(self.device)

    def predict(
        self,
        seed: int = Input(description="Picks the picture; the same seed gives the same PNG", default=0, ge=0),
        width: int = Input(description="Width in pixels", default=256, ge=16, le=2048),
        height: int = Input(description="Height in pixels", default=256, ge=16, le=2048),
    ) -> Path:
        image = render(self.model, seed, width, height, self.device)
        out = LocalPath(tempfile.mkdtemp(prefix="cppn-")) / f"image-{seed}.png"
        out.write_bytes(png_bytes(image))
        return Path(out)

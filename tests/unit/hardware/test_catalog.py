"""The hardware catalogue: the shipped default, operator overrides, and SKU → runner label."""

import json
from pathlib import Path

import pytest

from libs.hardware import CATALOG_ENV, UnknownHardware, default_catalog, load_catalog


def test_default_catalogue_lists_replicates_skus_and_serves_gpus_from_gpu_runners() -> None:
    catalog = load_catalog({})
    assert catalog == default_catalog()
    assert catalog.skus[0] == "cpu"
    assert {"gpu-t4", "gpu-l40s", "gpu-a100-large", "gpu-a100-large-2x", "gpu-h100"} <= set(catalog.skus)
    assert catalog.require("gpu-t4").name == "Nvidia T4 GPU"
    assert catalog.require("gpu-a100-large").gpu_memory_gb == 80
    assert catalog.runner_label("cpu") == "cpu"
    assert {catalog.runner_label(sku) for sku in catalog.skus if sku.startswith("gpu-")} == {"gpu"}
    # Versions that set build.gpu record `gpu`, which is not a SKU: it stays its own label.
    assert catalog.runner_label("gpu") == "gpu"


def test_unknown_sku_names_the_valid_ones() -> None:
    with pytest.raises(UnknownHardware) as caught:
        default_catalog().require("gpu-a40-small")
    assert caught.value.valid == default_catalog().skus
    assert "gpu-t4" in str(caught.value)


def test_env_replaces_the_catalogue_inline_or_from_a_file(tmp_path: Path) -> None:
    entries = [
        {"sku": "cpu", "name": "CPU", "runner": "cpu"},
        {"sku": "gpu-h100", "name": "Nvidia H100 GPU", "gpu_memory_gb": 80, "runner": "gpu-h100"},
    ]
    inline = load_catalog({CATALOG_ENV: json.dumps(entries)})
    assert inline.skus == ["cpu", "gpu-h100"] and inline.runner_label("gpu-h100") == "gpu-h100"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"hardware": entries}))
    assert load_catalog({CATALOG_ENV: str(path)}) == inline


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('[{"sku": "cpu", "name": "CPU", "runner": "cpu"}, {"sku": "cpu", "name": "again", "runner": "cpu"}]',
         "listed twice"),
        ('[{"sku": "GPU T4", "name": "T4", "runner": "gpu"}]', "sku"),
        ('[{"sku": "gpu-t4", "name": "T4", "runner": "runner.jobs"}]', "runner"),
        ("[]", "hardware"),
        ("{not json", "invalid hardware catalogue"),
    ],
)
def test_a_bad_catalogue_is_refused_with_the_reason(document: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_catalog({CATALOG_ENV: document})


def test_a_missing_file_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog({CATALOG_ENV: "/nonexistent/catalog.json"})

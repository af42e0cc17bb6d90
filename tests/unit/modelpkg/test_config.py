"""cog.yaml reading and refusals."""

from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError, load_cog_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "predictors"


def _write(tmp_path: Path, yaml_text: str, predict: bool = True) -> Path:
    (tmp_path / "cog.yaml").write_text(yaml_text)
    if predict:
        (tmp_path / "predict.py").write_text("")
    return tmp_path


def test_reads_hello_world() -> None:
    config = load_cog_config(Path(__file__).resolve().parents[3] / "examples" / "hello-world")
    assert config.predict == "predict.py:Predictor"
    assert config.python_version == "3.11"
    assert config.train is None
    assert config.concurrency_max == 1


def test_reads_all_fields(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    config = load_cog_config(_write(tmp_path, (
        'build:\n  gpu: true\n  python_version: "3.12"\n  python_packages: ["torch==2.0"]\n'
        'run: "predict.py:Runner"\ntrain: "train.py:train"\nconcurrency:\n  max: 4\n'
        'environment: ["A=1", "B=x=y"]\n'
    )))
    assert config.predict == "predict.py:Runner"
    assert config.train == "train.py:train"
    assert config.gpu and config.python_version == "3.12"
    assert config.build["python_packages"] == ["torch==2.0"]
    assert config.concurrency_max == 4
    assert config.environment == {"A": "1", "B": "x=y"}


def test_refuses_missing_cog_yaml(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="no cog.yaml"):
        load_cog_config(tmp_path)


def test_refuses_missing_predict_ref() -> None:
    with pytest.raises(ModelPackageError, match="no predictor reference"):
        load_cog_config(FIXTURES / "no_ref")


def test_refuses_missing_predictor_file(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="does not exist"):
        load_cog_config(_write(tmp_path, 'predict: "model.py:Predictor"\n', predict=False))


def test_refuses_malformed_ref(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="must look like"):
        load_cog_config(_write(tmp_path, 'predict: "Predictor"\n'))

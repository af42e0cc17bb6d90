"""cog.yaml reading and refusals."""

from pathlib import Path

import pytest
import yaml

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


def test_refuses_python_older_than_3_8() -> None:
    with pytest.raises(ModelPackageError, match=r"build.python_version '3.7' is not supported"):
        load_cog_config(FIXTURES / "old_python")


@pytest.mark.parametrize("version", ["3.8", "3.11", "3.13", "3.12.1"])
def test_accepts_supported_python_versions(tmp_path: Path, version: str) -> None:
    config = load_cog_config(_write(tmp_path, f'build:\n  python_version: "{version}"\npredict: "predict.py:P"\n'))
    assert config.python_version == version


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ('python_version: "2.7"', "is not supported"),
        ('python_version: "three"', "is not supported"),
        ("python_packages: inflection", "python_packages must be a list of strings"),
        ('python_packages: ["--index-url=http://x"]', "is a pip option"),
        ("system_packages: [1, 2]", "system_packages must be a list of strings"),
        ("gpu: maybe", "build.gpu must be true or false"),
    ],
)
def test_refuses_malformed_build(tmp_path: Path, build: str, message: str) -> None:
    with pytest.raises(ModelPackageError, match=message):
        load_cog_config(_write(tmp_path, f'build:\n  {build}\npredict: "predict.py:P"\n'))


def _with_packages(requirement: str) -> str:
    return yaml.safe_dump({"build": {"python_packages": [requirement]}, "predict": "predict.py:P"})


@pytest.mark.parametrize(
    "requirement",
    [
        "evil @ http://127.0.0.1:4222/evil-1.0-py3-none-any.whl",
        "evil@https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/pkg-1.0-py3-none-any.whl",
        "evil @ file:///work/.cogwheel/credentials/rpc-token",
        "file:///etc/shadow",
        "/etc/passwd",
        "./vendored",
        "~/wheels/x.whl",
        r"..\outside\x.whl",
        "pkg-1.0-py3-none-any.whl",
        "sdist.tar.gz",
        "git+https://github.com/org/repo",
    ],
)
def test_refuses_python_packages_that_point_somewhere(tmp_path: Path, requirement: str) -> None:
    with pytest.raises(ModelPackageError, match="is not a package of the index"):
        load_cog_config(_write(tmp_path, _with_packages(requirement)))


@pytest.mark.parametrize(
    "requirement",
    ["torch==2.1.0", "numpy>=1.26,<3", "transformers[torch]~=4.40", "inflection", 'tomli; python_version < "3.11"',
     "Pillow==10.*"],
)
def test_accepts_packages_of_the_index(tmp_path: Path, requirement: str) -> None:
    config = load_cog_config(_write(tmp_path, _with_packages(requirement)))
    assert config.python_packages == (requirement,)


@pytest.mark.parametrize("value", ["0", "-1", "lots", "true"])
def test_refuses_bad_concurrency(tmp_path: Path, value: str) -> None:
    with pytest.raises(ModelPackageError, match="concurrency.max must be a positive integer"):
        load_cog_config(_write(tmp_path, f'predict: "predict.py:P"\nconcurrency:\n  max: {value}\n'))


def test_packages_and_warnings() -> None:
    config = load_cog_config(FIXTURES / "with_packages")
    assert config.python_packages == ("inflection==0.5.1",)
    assert config.system_packages == ("libfoo-dev",)
    assert config.concurrency_max == 3
    assert config.warnings() == ["build.system_packages are not installed (no image is built): libfoo-dev"]


def test_warns_about_other_python_version(tmp_path: Path) -> None:
    config = load_cog_config(_write(tmp_path, 'build:\n  python_version: "3.9"\npredict: "predict.py:P"\n'))
    assert any("3.9 is not available" in w for w in config.warnings())

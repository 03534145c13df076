"""Run configs and the label schema are validated, with errors naming the key and the file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config.run import load_config
from pipeline.config.schema import load_schema
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["default.yaml", "fast.yaml", "smoke.yaml", "ablation_vast.yaml", "ablation_tweeteval.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    path = REPO / "configs" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    cfg = load_config(path)
    assert cfg.run_name
    assert cfg.schema().target_names == ["blame_management", "funding", "nqsw_access", "ofsted"]


def _config_with_unknown_key(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    data["training"]["epochz"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_config_with_unknown_key(tmp_path))
    assert "training.epochz" in str(exc.value) and "bad.yaml" in str(exc.value)


def test_wrong_type_in_override_names_the_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(REPO / "configs" / "smoke.yaml", ["training.batch_size=many"])
    assert "training.batch_size" in str(exc.value) and "(--set)" in str(exc.value)


def test_a_bad_key_from_the_file_does_not_blame_an_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_config_with_unknown_key(tmp_path), ["training.epochs=2"])
    assert "training.epochz" in str(exc.value) and "(--set)" not in str(exc.value)


def test_override_sets_nested_values() -> None:
    cfg = load_config(REPO / "configs" / "smoke.yaml", ["training.epochs=3", "input.max_length=192"])
    assert cfg.training.epochs == 3 and cfg.input.max_length == 192


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("run_name: x\ntraining: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "broken.yaml" in str(exc.value) and exc.value.line is not None


def test_adding_a_target_is_a_config_change(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "configs" / "labels.yaml").read_text())
    data["targets"]["agency_work"] = {"statement": "Agency social work is good for children's services."}
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    schema = load_schema(path)
    assert schema.target_names[-1] == "agency_work"


def test_schema_rejects_none_class_outside_stance_classes(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "configs" / "labels.yaml").read_text())
    data["none_class"] = "neutral"
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="none_class"):
        load_schema(path)


def test_configs_saved_before_domain_real_modes_still_load(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    for old, mode in ((True, "dev"), (False, "none")):
        data["data"].pop("domain_real", None)
        data["data"]["domain_real_dev"] = old
        path = tmp_path / "old.yaml"
        path.write_text(yaml.safe_dump(data))
        assert load_config(path).data.domain_real.use == mode

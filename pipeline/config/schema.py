"""The label schema: sentiment classes, stance classes and the stance targets with their statements."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.settings import SCHEMA_PATH
from pipeline.errors import ConfigError

DEFAULT_SCHEMA_PATH = Path(SCHEMA_PATH)
# What a head says below --min-confidence (pipeline/inference/abstain.py): never a class of a schema.
ABSTAIN_LABEL = "abstain"


class Target(BaseModel):
    """One stance target: favor/against are relative to ``statement``."""

    model_config = ConfigDict(extra="forbid")
    statement: str = Field(min_length=10, description="The target statement annotators judge against.")


class LabelSchema(BaseModel):
    """Sentiment classes, stance classes and stance targets (ordered as in the file)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "codebook-v1"
    sentiment_classes: list[str] = Field(min_length=2)
    stance_classes: list[str] = Field(min_length=2)
    none_class: str = "none"
    targets: dict[str, Target] = Field(min_length=1)

    @field_validator("sentiment_classes", "stance_classes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"classes must be unique, got {v}")
        if ABSTAIN_LABEL in v:
            raise ValueError(f"{ABSTAIN_LABEL!r} is reserved for low-confidence predictions (--min-confidence)")
        return v

    @field_validator("targets")
    @classmethod
    def _target_names(cls, v: dict[str, Target]) -> dict[str, Target]:
        for name in v:
            if not name.isidentifier():
                raise ValueError(f"target name {name!r} must be a simple identifier (letters, digits, _)")
        return v

    @model_validator(mode="after")
    def _none_in_stance(self) -> LabelSchema:
        if self.none_class not in self.stance_classes:
            raise ValueError(f"none_class {self.none_class!r} is not one of stance_classes {self.stance_classes}")
        return self

    @property
    def target_names(self) -> list[str]:
        return list(self.targets)

    @property
    def target_statements(self) -> list[str]:
        """Each target's codebook statement, in ``target_names`` order."""
        return [self.targets[t].statement for t in self.targets]

    @property
    def polar_classes(self) -> list[str]:
        """Stance classes other than ``none`` (favor, against): the SemEval F1avg classes."""
        return [c for c in self.stance_classes if c != self.none_class]


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the dotted key."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{key}: {msg}" if key else msg)  # a check across sections names its keys itself
    return "; ".join(lines)


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", p) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (bad byte at offset {exc.start}); save the YAML file as UTF-8", p) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", p,
                          line=mark.line + 1 if mark else None) from exc
    if not isinstance(data, dict):
        raise ConfigError("config must be a YAML mapping", p)
    return data


def load_schema(path: str | Path = DEFAULT_SCHEMA_PATH) -> LabelSchema:
    """Load and validate a label schema YAML; ConfigError names the file and key."""
    data = load_yaml(path)
    try:
        return LabelSchema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), path) from exc

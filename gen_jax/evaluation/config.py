"""Configs as data: typed presets (frozen dataclasses), `key=value` overrides of any field, validated.

    cfg = resolve(PRESETS["demo"], ["train.steps=100", "model_options.nsf.num_bins=16", "models=[nsf]"])

Parsing and type checking are OmegaConf's (structured configs from the dataclasses: YAML values,
conversion to the field's type, "Did you mean" for misspelt keys), chosen because it validates
against the dataclasses gen_jax already uses for its presets, without a second schema, and its
dot-list syntax reaches any nested field. Two kinds of field hold dictionaries and are checked
against their own schemas here:

- `model_options`: model name -> builder options, checked against the model's options
  (`gen_jax.models.registry.model_options`: names, defaults, types) and, for every model the config
  trains, filled with the defaults, so the resolved config shows (and run keys cover) every option;
- `train_overrides`: model name -> `TrainConfig` fields for that model.

Any error is a `ConfigError` with one line naming the key, the problem and the valid choices.
`config_hash` keys runs by their resolved configuration (`gen_jax.evaluation.runs`).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Sequence
from typing import Any

from gen_jax.core import ConfigError
from gen_jax.training import TrainConfig


def _omegaconf():
    import omegaconf

    return omegaconf


def _error(e: Exception, where: str = "") -> ConfigError:
    """One line from an OmegaConf error, with the valid keys at that level."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    key = getattr(e, "full_key", None)
    prefix = f"{where}{'.' if where and key else ''}{key or ''}"
    obj = getattr(e, "object_type", None)
    valid = ""
    if obj is not None and dataclasses.is_dataclass(obj) and "not in" in first:
        valid = "; valid keys: " + ", ".join(f.name for f in dataclasses.fields(obj))
    return ConfigError(f"{prefix + ': ' if prefix else ''}{first}{valid}")


def _annotation(ann):
    """An OmegaConf-compatible annotation for a builder option (Sequence -> tuple, Literal -> str)."""
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return str
    if origin in (collections.abc.Sequence, list, tuple) and typing.get_args(ann):
        return tuple[typing.get_args(ann)[0], ...]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [_annotation(a) for a in typing.get_args(ann)]
        if all(a in (int, float, bool, str, type(None)) for a in args):
            return typing.Union[tuple(args)]  # noqa: UP007
        inner = [a for a in args if a is not type(None)]
        return (inner[0] | None) if len(inner) == 1 else Any
    if ann in (int, float, bool, str) or origin in (tuple, dict):
        return ann
    return Any


def options_schema(model: str) -> type:
    """A dataclass whose fields are the model's options (defaults and types from the registry)."""
    from gen_jax.models.registry import model_options

    fields = []
    for opt in model_options(model).values():
        default = opt.default
        if isinstance(default, (list, dict)):
            fields.append(
                (
                    opt.name,
                    _annotation(opt.annotation),
                    dataclasses.field(default_factory=lambda d=default: d),
                )
            )
        else:
            fields.append((opt.name, _annotation(opt.annotation), dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{model}_options", fields, frozen=True)


def _typed(schema: type, values: dict, where: str) -> dict:
    """`values` checked and converted by `schema` (a dataclass); returns every field."""
    oc = _omegaconf()
    try:
        merged = oc.OmegaConf.merge(oc.OmegaConf.structured(schema), values)
        obj = oc.OmegaConf.to_object(merged)
    except oc.errors.OmegaConfBaseException as e:
        raise _error(e, where) from None
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def resolve_model_options(models: Sequence[str], options: dict, where: str = "model_options") -> dict:
    """Every model's full option dict: `options` checked against the registry, defaults filled in for
    each of `models` (and for any other model `options` names)."""
    from gen_jax.models.registry import MODELS

    out = {}
    for name in models:
        if name not in MODELS:
            raise ConfigError(f"models: unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    for name in dict.fromkeys([*models, *options]):
        if name not in MODELS:
            raise ConfigError(f"{where}: unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
        given = dict(options.get(name) or {})
        choices = _choices(name)
        for key, allowed in choices.items():
            if key in given and given[key] not in allowed:
                raise ConfigError(f"{where}.{name}.{key}: {given[key]!r} is not one of {allowed}")
        out[name] = _typed(options_schema(name), given, f"{where}.{name}")
    return out


def _choices(model: str) -> dict:
    """Literal-typed options of a model: name -> allowed values."""
    from gen_jax.models.registry import model_options

    return {
        o.name: typing.get_args(o.annotation)
        for o in model_options(model).values()
        if typing.get_origin(o.annotation) is typing.Literal
    }


def resolve_train_overrides(overrides: dict, where: str = "train_overrides") -> dict:
    """Each model's TrainConfig overrides, checked and converted (only the given fields are kept)."""
    out = {}
    for name, fields in overrides.items():
        full = _typed(TrainConfig, dict(fields or {}), f"{where}.{name}")
        out[name] = {k: full[k] for k in (fields or {})}
    return out


def _resolve_node(node):
    """Fill and check the dictionary-valued fields of one config node and of its sub-configs."""
    if not dataclasses.is_dataclass(node):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _resolve_node(value)
    names = {f.name for f in dataclasses.fields(node)}
    if "model_options" in names:
        models = getattr(node, "models", ()) or ()
        changes["model_options"] = resolve_model_options(models, node.model_options or {})
    if "train_overrides" in names:
        changes["train_overrides"] = resolve_train_overrides(node.train_overrides or {})
    return dataclasses.replace(node, **changes) if changes else node


def resolve(preset, overrides: Sequence[str] = ()):
    """The preset (a frozen dataclass) with `key=value` overrides applied, typed and validated, and
    its model options and per-model training overrides checked and filled (see the module doc)."""
    oc = _omegaconf()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} is not key=value (e.g. train.steps=1000 or models=[nsf,maf])"
            )
    try:
        schema = oc.OmegaConf.structured(preset)
        merged = oc.OmegaConf.merge(schema, oc.OmegaConf.from_dotlist(list(overrides)))
        cfg = oc.OmegaConf.to_object(merged)
    except oc.errors.OmegaConfBaseException as e:
        raise _error(e) from None
    except (TypeError, ValueError) as e:  # a dataclass's own validation (__post_init__)
        raise ConfigError(str(e).splitlines()[0]) from None
    return _resolve_node(cfg)


def jsonable(value):
    """Plain JSON types for a config: dataclasses -> dicts, tuples -> lists, non-finite floats -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def config_hash(value, length: int = 10) -> str:
    """A short stable hash of a config (its canonical JSON)."""
    text = json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def to_yaml(value) -> str:
    """The config as YAML, for showing at the start of a run."""
    oc = _omegaconf()
    return oc.OmegaConf.to_yaml(oc.OmegaConf.create(jsonable(value)))

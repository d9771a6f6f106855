"""Settings are dataclass fields: typed construction from plain values, TOML spelling, field help.

`build(kind, section, values)` checks every value against its field's annotation (TOML has no
null, so "none" stands for None in `X | None` fields) and raises `ConfigError` naming
`section.key`, the value and the type allowed; range checks stay in each dataclass.
`field_help(kind)` reads each field's attribute docstring or trailing `# comment` as its help.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from typing import Any, Mapping

import tomli_w

from rlime.common.errors import ConfigError, require

_KINDS = {bool: (bool, "true or false"), int: (int, "an integer"), float: ((int, float), "a number"),
          str: (str, "a string")}


@functools.lru_cache(maxsize=None)
def field_types(kind: type) -> dict[str, Any]:
    """{field name: resolved annotation} of a dataclass, nested dataclass fields left out."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)
            if not dataclasses.is_dataclass(hints[f.name])}


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if type(None) not in args:
        return hint, False
    (inner,) = [a for a in args if a is not type(None)]
    return inner, True


def type_name(hint: Any) -> str:
    """What a field of this annotation accepts, in words."""
    inner, optional = _optional(hint)
    if typing.get_origin(inner) is tuple:
        text = f"a list of {_KINDS[typing.get_args(inner)[0]][1].split(' ', 1)[1]}s"
    else:
        text = _KINDS[inner][1]
    return f"{text} or none" if optional else text


def _fits(value: Any, hint: Any) -> bool:
    inner, optional = _optional(hint)
    if optional and value is None:
        return True
    if typing.get_origin(inner) is tuple:
        return isinstance(value, (list, tuple)) and all(_fits(v, typing.get_args(inner)[0])
                                                        for v in value)
    accepted, _ = _KINDS[inner]
    return isinstance(value, accepted) and (inner is bool or not isinstance(value, bool))


def check_types(obj: Any, section: str) -> None:
    """ConfigError naming `section.field` for the first field of `obj` its annotation refuses."""
    for name, hint in field_types(type(obj)).items():
        value = getattr(obj, name)
        require(_fits(value, hint), f"{section}.{name}", value, type_name(hint))


def coerce(key: str, value: Any, hint: Any) -> Any:
    """`value` as a field of annotation `hint` holds it; ConfigError if it cannot be.

    "none" is None in `X | None` fields, "inf"/"-inf" a float, a list a tuple.
    """
    inner, optional = _optional(hint)
    if optional and value == "none":
        return None
    if inner is float and value in ("inf", "-inf"):
        return float(value)
    require(_fits(value, hint), key, value, type_name(hint))
    return tuple(value) if isinstance(value, list) else value


def build(kind: type, section: str, values: Mapping[str, Any], **nested: Any) -> Any:
    """kind(**values) with every value type-checked; unknown keys name what is allowed."""
    types = field_types(kind)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
                          f"allowed in [{section}]: {', '.join(sorted(types))}")
    return kind(**{k: coerce(f"{section}.{k}", v, types[k]) for k, v in values.items()}, **nested)


def toml_value(value: Any) -> str:
    """One-line TOML of a setting's value ("none" for None; tuples as lists)."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(toml_value(v) for v in value)}]"
    return tomli_w.dumps({"v": value})[4:].strip()


@functools.lru_cache(maxsize=None)
def field_help(kind: type) -> dict[str, str]:
    """{field name: its attribute docstring, else its trailing comment} from the class source."""
    source = textwrap.dedent(inspect.getsource(kind))
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    body = ast.parse(source).body[0].body
    out = {}
    for node, after in zip(body, body[1:] + [None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            out[node.target.id] = inspect.cleandoc(after.value.value)
        elif node.end_lineno in comments:
            out[node.target.id] = comments[node.end_lineno]
    return out

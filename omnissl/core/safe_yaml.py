"""The one YAML reader for everything omnissl reads: recipe files, ``KEY=VALUE`` overrides, ``--public`` mappings.

PyYAML's ``safe_load`` is safe against code execution but not against the rest of what an audit found a shared
recipe can do (issue 17):

- *aliases* (``&a`` / ``*a``): nine nested levels of nine-fold aliases expand to ~390 M nodes when the recipe is
  dumped into the run directory, so ``omnissl train`` hung at 4.6 GB (F8). A recipe never needs them, so every
  alias is refused (anchors alone are harmless and tolerated);
- *duplicate keys*: PyYAML keeps the last one, so a second ``train:`` block silently replaced the first (F19);
- *YAML 1.1 numbers*: ``010`` is octal (8) and ``1:30`` is base 60 (90), which nobody writing a recipe means;
  both are refused rather than guessed, so the message says what YAML would have read;
- size and nesting: a document above :data:`MAX_BYTES` or nested deeper than :data:`MAX_DEPTH` is refused before
  it can cost memory or overflow the recursive composer.

Every failure is a one-line :class:`ConfigError` naming the source (file or override) and the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from omnissl.core.errors import ConfigError

MAX_BYTES = 1 << 20  # the largest shipped recipe is ~3 KB; a megabyte leaves room for generated ones
MAX_DEPTH = 64  # recipes nest ~6 levels; the composer recurses per level
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_OCTAL = re.compile(r"^[-+]?0[0-7_]+\Z")


class _Refused(Exception):
    """Raised inside the loader; turned into a ConfigError that carries the source name."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and caps nesting while composing (before anything is expanded)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(event.start_mark, f"YAML alias '*{event.anchor}' refused: recipes may not use "
                                             f"aliases (they can expand without bound); write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _where(source: str, mark: Any) -> str:
    return f"{source}: line {mark.line + 1}" if mark is not None else source


def _key_text(loader: _Loader, node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        try:
            return str(loader.construct_object(node, deep=True))
        except yaml.YAMLError:
            return node.value
    return f"<{node.id} key>"


def _check_scalar(loader: _Loader, node: yaml.ScalarNode) -> None:
    """YAML 1.1 reads ``010`` as 8 and ``1:30`` as 90; refuse both rather than pick a meaning silently."""
    if node.style is not None or node.tag not in (_INT_TAG, _FLOAT_TAG):  # quoted: a string, as written
        return
    value = " ".join(node.value.split())
    octal = node.tag == _INT_TAG and _OCTAL.match(value)
    if not octal and ":" not in value:
        return
    number = loader.construct_object(node, deep=True)
    if not isinstance(number, (int, float)):
        return
    if octal:
        raise _Refused(node.start_mark, f"'{value}' is a YAML 1.1 octal number (= {number}); refused: write "
                                        f"{int(value.replace('_', ''), 10)} without the leading zero, or "
                                        f"{number} if octal was meant, or quote it for a string")
    raise _Refused(node.start_mark, f"'{value}' is a YAML 1.1 base-60 number (= {number}); refused: "
                                    f"write {number}, or quote it for a string")


def _check_tree(loader: _Loader, root: yaml.Node) -> None:
    """Duplicate keys (with their full key path) and ambiguous numbers, walked iteratively over the node tree."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(loader, node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                key = _key_text(loader, key_node)
                key_path = f"{path}.{key}" if path else key
                if key in first_line:
                    raise _Refused(key_node.start_mark, f"duplicate key '{key_path}' (first at line "
                                                        f"{first_line[key]}); YAML would silently keep only the last")
                first_line[key] = key_node.start_mark.line + 1
                stack.append((key_node, key_path))
                stack.append((value_node, key_path))


def load_yaml_text(text: str, *, source: str) -> Any:
    """Parse one YAML document under the rules above; ``source`` names it in errors (a path or an override)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters, larger than the {MAX_BYTES}-byte limit for YAML")
    one_line = "\n" not in text.strip()  # an override value: "line 1" would say nothing
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(loader, node)
        return loader.construct_document(node)
    except _Refused as refused:
        raise ConfigError(f"{_where(source, None if one_line else refused.mark)}: {refused.message}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise ConfigError(f"{_where(source, None if one_line else mark)}: not valid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except Exception as error:  # noqa: BLE001 - PyYAML's constructors fail in their own ways on explicit tags
        # (`!!int abc`: ValueError, an empty `!!float`: IndexError, `!!timestamp x`: AttributeError)
        detail = " ".join(str(error).split())[:200]
        raise ConfigError(f"{source}: not valid YAML: a tagged value cannot be read ({type(error).__name__}: "
                          f"{detail})") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | Path, *, what: str = "recipe") -> Any:
    """A YAML file as data: checked for existence, size and UTF-8 before parsing (no raw decode tracebacks)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(f"{path}: {size} bytes, larger than the {MAX_BYTES}-byte limit for a {what} file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        hint = "UTF-16?" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "binary?"
        raise ConfigError(f"{path}: not a UTF-8 text file (byte 0x{data[error.start]:02x} at offset {error.start}; "
                          f"{hint}); save the {what} as UTF-8") from None
    return load_yaml_text(text, source=str(path))

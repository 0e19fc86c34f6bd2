"""Read scenario files: safe YAML, bases, line numbers, ``--set`` overrides and one-line errors.

Every failure becomes a :class:`ScenarioError` whose message names the file, the field path,
the line where known, what was expected and what was found, with a "did you mean" suggestion
for misspelt keys. The command line prints it and exits with status 2.

A scenario may start from another one: ``base: reactive.yaml`` (a path relative to the folder
of the file that says it) reads that file first and merges this one over it. Mappings merge key
by key; any other value, lists such as ``touchpoints`` included, replaces the base's value
whole. Bases may have bases of their own. The line map records, for every field, the file and
line where its value was written, so an error in a value that came from the base names the
base file. ``--set`` overrides apply last, to the merged scenario.
"""

from __future__ import annotations

import copy
import difflib
import re
import reprlib
import shlex
import stat
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from cxsim import units
from cxsim.errors import ScenarioError  # raised here; in errors for the command line
from cxsim.scenario import Scenario, listed

Path_ = tuple[str | int, ...]
Origin = tuple[str, int]
"""Where a value was written: (file, line). Line 0 means it was set by an override."""
Lines = dict[Path_, Origin]

_FROM_SET: Origin = ("", 0)

BASE_KEY = "base"
MAX_FILE_BYTES = 10 * 2**20
"""Largest scenario or sweep file read (10 MB; the shipped ones are under 10 KB)."""
MAX_BASES = 8
"""Longest chain of bases a scenario may sit on (a variant of a variant of ...)."""


def load_scenario(
    source: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()
) -> Scenario:
    """Read, resolve its bases, override and validate a scenario file.

    ``overrides`` is either a mapping of dotted keys to values (``{"strategy.detection": 0.5}``)
    or strings ``"key=value"`` as typed after ``--set`` (values are read as YAML scalars).
    """
    path = Path(source)
    data, lines = _resolve(read_text(path, show_path(path)), str(path))
    return _finish(data, lines, str(path), overrides)


def load_scenarios(sources: Sequence[str | Path], overrides: Iterable[str] = ()) -> list[Scenario]:
    """Read the scenarios of one comparison; ``--set`` strings may target one of them.

    ``"key=value"`` applies to every scenario; ``"target:key=value"`` only to the scenario
    ``target`` names (see :func:`targeted`).
    """
    paths = [Path(s) for s in sources]
    documents = [_resolve(read_text(p, show_path(p)), str(p)) for p in paths]
    names = [_name_of(data) for data, _ in documents]
    stems = [p.stem for p in paths]
    chosen: list[list[str]] = [[] for _ in paths]
    for item in [overrides] if isinstance(overrides, str) else overrides:
        target, setting = _split_target(item)
        for i in targeted(target, names, stems, f"--set {item!r}"):
            chosen[i].append(setting)
    return [
        _finish(data, lines, str(path), settings)
        for (data, lines), path, settings in zip(documents, paths, chosen, strict=True)
    ]


def parse_scenario(
    text: str, filename: str = "<scenario>", overrides: Mapping[str, Any] | Iterable[str] = ()
) -> Scenario:
    """Validate scenario YAML text; ``filename`` names it in messages and locates a ``base``."""
    data, lines = _resolve(text, filename)
    return _finish(data, lines, filename, overrides)


def validate(data: dict, filename: str = "<scenario>", lines: Lines | None = None) -> Scenario:
    """Build a Scenario from plain data, turning pydantic's errors into one ScenarioError."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(describe(exc, data, filename, lines or {})) from None


def _refuse_a_sweep(data: dict, filename: str, lines: Lines, via: str) -> None:
    """One line for a sweep file read as a scenario (or as the base a variant names at
    ``via``), instead of an unknown key for each of its settings: a file with ``scenarios``,
    which no scenario can have, and none of the keys only a scenario has. Decided on the file
    as written, before bases merge and defaults fill a scenario's sections."""
    if "scenarios" not in data:
        return  # a scenario file, the common case: no need to load the sweep's settings
    from cxsim.sweep.spec import SCENARIO_ONLY  # here: cxsim.sweep.spec imports this module

    if any(key in SCENARIO_ONLY for key in data):
        return
    if via:
        raise ScenarioError(
            f"{via}: {BASE_KEY}: {filename} is a sweep file, not a scenario to start from"
        )
    raise ScenarioError(
        f"{locate(filename, lines, ('scenarios',))}: scenarios lists the scenarios of a sweep, "
        f"so this is a sweep file, not a scenario; run it with: cxsim sweep {shlex.quote(filename)}"
    )


def apply_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """A new Scenario with dotted-key overrides applied (used by batch_run keyword arguments)."""
    if not overrides:
        return scenario
    data = scenario.model_dump(mode="json")
    lines: Lines = {}
    before = copy.deepcopy(data.get("time"))
    overridden: set[Path_] = set()
    for key, value in _parse_overrides(overrides):
        if isinstance(value, np.generic):  # NumPy scalars from sweeps become plain numbers
            value = value.item()
        _apply_override(data, key, value, "<overrides>")
        overridden.add(_split(key, data))
        _mark_override(lines, _split(key, data))
    _convert_units(data, lines, "<overrides>", before, overridden)
    return validate(data, "<overrides>", lines)


def scenario_yaml(scenario: Scenario) -> str:
    """Every field of ``scenario`` as YAML, defaults filled in; loading it gives it back."""
    data = scenario.model_dump(mode="json")
    # One line per touchpoint, as in the shipped files, keeps the list readable (hence the
    # wide lines: a wrapped flow mapping is harder to read than a long one).
    data["touchpoints"] = [_FlowMapping(t) for t in data["touchpoints"]]
    return yaml.dump(data, Dumper=_ScenarioDumper, sort_keys=False, allow_unicode=True, width=1000)


def _finish(
    data: dict, lines: Lines, filename: str, overrides: Mapping[str, Any] | Iterable[str]
) -> Scenario:
    """Apply overrides to resolved data (blaming them on --set), convert units, validate."""
    pairs = _parse_overrides(overrides)
    before = copy.deepcopy(data.get("time")) if pairs else None
    overridden: set[Path_] = set()
    for key, value in pairs:
        _apply_override(data, key, value, filename)
        overridden.add(_split(key, data))
        _mark_override(lines, _split(key, data))
    _convert_units(data, lines, filename, before, overridden)
    return validate(data, filename, lines)


def _convert_units(
    data: dict, lines: Lines, filename: str, before: Any, overridden: set[Path_]
) -> None:
    """Every step-dependent value restated per step of the scenario (see :mod:`cxsim.units`):
    unit strings parsed, defaults converted from per week, and, when ``--set`` changes the
    step, the files' values converted from the step they were written in."""
    try:
        steps = units.steps_of(data, before, overridden)
        if steps is not None:
            units.resolve(data, steps, overridden)
    except units.UnitError as exc:
        where = locate(filename, lines, exc.path)
        raise ScenarioError(f"{where}: {_dotted(exc.path)}: {exc}") from None


def _mark_override(lines: Lines, path: Path_) -> None:
    """Mark ``path`` as set by an override: it, what lies under it, missing parents."""
    for known in [p for p in lines if p[: len(path)] == path]:
        del lines[known]
    for depth in range(1, len(path)):
        lines.setdefault(path[:depth], _FROM_SET)
    lines[path] = _FROM_SET


def read_text(path: Path, label: str) -> str:
    """The text of a scenario file; ``label`` starts the message if it cannot be read.

    Only an ordinary file is read, and only up to MAX_FILE_BYTES: a device, a pipe or a
    huge file could be read forever or fill the memory.
    """
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError(f"{label}: not a regular file, expected a scenario YAML file")
        if info.st_size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"{label}: {info.st_size:,} bytes; a scenario or sweep file is at most "
                f"{MAX_FILE_BYTES // 2**20} MB"
            )
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{label}: is a folder, expected a scenario YAML file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{label}: not a text file (expected UTF-8 YAML)") from None
    except OSError as exc:
        raise ScenarioError(f"{label}: cannot be read ({exc.strerror})") from None
    except ValueError:  # a NUL character in the name: no file can have it
        raise ScenarioError(
            f"{label}: not a possible file name (it holds a NUL character)"
        ) from None


# --- bases: a scenario that starts from another -------------------------------------------


def _resolve(
    text: str, filename: str, chain: tuple[tuple[Path, str], ...] = (), via: str = ""
) -> tuple[dict, Lines]:
    """Data and line map of ``text`` merged over its chain of bases.

    ``chain`` holds (resolved path, shown name) of the files that led here, to catch loops;
    ``via`` is the ``file:line`` of the ``base:`` that named this file, if one did.
    """
    try:
        data, lines = read_yaml(text, filename)
    except ScenarioError as exc:
        if not via:
            raise
        # The message names the broken file; say also why it was read at all.
        raise ScenarioError(f"{exc} (read as the base named at {via})") from None
    _refuse_a_sweep(data, filename, lines, via)
    if BASE_KEY not in data:
        return data, lines
    via = f"{filename}:{lines[(BASE_KEY,)][1]}"
    where = f"{via}: {BASE_KEY}"
    target = data.pop(BASE_KEY)
    for path in [p for p in lines if p[:1] == (BASE_KEY,)]:
        del lines[path]
    chain = (*chain, (Path(filename).resolve(), filename))
    base_path = _base_path(target, filename, where, chain)
    shown = show_path(base_path)
    text = read_text(base_path, f"{where}: {shown}")
    base_data, base_lines = _resolve(text, shown, chain, via)
    try:
        merged = _merge(base_data, data, {})
    except RecursionError:
        raise ScenarioError(f"{filename}: nested too deeply to merge over its base") from None
    return merged, _merge_lines(base_data, base_lines, data, lines)


def _base_path(target: Any, filename: str, where: str, chain: tuple[tuple[Path, str], ...]) -> Path:
    """The file ``base:`` names, checked for type, loops and chain length before reading."""
    if not isinstance(target, str) or not target.strip():
        found = "empty text" if isinstance(target, str) else _describe_value(target)
        raise ScenarioError(
            f"{where}: expected the path of the scenario file this one starts from, "
            f"relative to this file's folder (text), found {found}"
        )
    path = Path(filename).parent / target
    files = [file for file, _ in chain]
    shown = [show_path(name) for _, name in chain]
    try:
        resolved = path.resolve()
        path.exists()  # raises for a name no file can have
    except (OSError, ValueError) as exc:  # a name too long, a NUL character
        reason = exc.strerror if isinstance(exc, OSError) else "it holds a NUL character"
        raise ScenarioError(
            f"{where}: {_show(target)}: not a possible file name ({reason})"
        ) from None
    if resolved in files:
        loop = _chain([*shown[files.index(resolved) :], show_path(path)])
        raise ScenarioError(f"{where}: {_show(target)} makes a loop of bases: {loop}")
    if len(chain) > MAX_BASES:
        raise ScenarioError(
            f"{where}: too many bases in a row (at most {MAX_BASES}): "
            f"{_chain([*shown, show_path(path)])} -> ..."
        )
    return path


def _chain(names: list[str]) -> str:
    """Files of a chain of bases, 'a -> b -> c'; the middle of a long one left out, so that
    the message stays one readable line."""
    if len(names) > 4:
        names = [*names[:2], f"({len(names) - 4} more)", *names[-2:]]
    return " -> ".join(names)


def show_path(path: Path | str) -> str:
    """A file name for a one-line message: quoted if it holds characters that are not
    printable (a line break), shortened in the middle if it is very long."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


def _describe_value(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else _show(value)


def _merge(base: Any, over: Any, memo: dict[tuple[int, int], dict]) -> Any:
    """``over`` merged onto ``base``: mappings key by key, anything else replaces whole.

    Neither input is changed. ``memo`` merges each pair of mappings once, so aliases that
    share (or contain) a mapping cost no repeated work and cannot recurse without end.
    """
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    key = (id(base), id(over))
    if key in memo:
        return memo[key]
    merged = memo[key] = dict(base)
    for name, value in over.items():
        merged[name] = _merge(base[name], value, memo) if name in base else value
    return merged


def _merge_lines(base_data: dict, base_lines: Lines, data: dict, lines: Lines) -> Lines:
    """Line map of the merged data: the variant's lines, and the base's where it still shows.

    A value the variant replaces (anything but a mapping merged into a mapping) hides every
    line the base had beneath it; a merged mapping keeps the base's lines for keys the
    variant does not set.
    """
    replaced = {
        path
        for path in lines
        if path
        and not (isinstance(_at(data, path), dict) and isinstance(_at(base_data, path), dict))
    }
    kept = {
        path: origin
        for path, origin in base_lines.items()
        if not any(path[:depth] in replaced for depth in range(1, len(path)))
    }
    return {**kept, **lines}


_MISSING = object()


def _at(data: Any, path: Path_) -> Any:
    """The value at ``path`` in plain data, or a marker when there is none."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _name_of(data: dict) -> str | None:
    name = data.get("name", Scenario.model_fields["name"].default)
    return name if isinstance(name, str) else None


# --- --set for one scenario of several ----------------------------------------------------


def _split_target(item: Any) -> tuple[str | None, Any]:
    """``"target:key=value"`` to (target, ``"key=value"``); without a target, (None, item).

    Field names contain no ':', so a ':' before the first '=' can only end a target; a ':' in
    the value (``description=a:b``) is left alone.
    """
    if not isinstance(item, str):
        return None, item  # _parse_overrides says what is wrong with it
    head, sep, _ = item.partition("=")
    if not sep or ":" not in head:
        return None, item
    target, _, setting = item.partition(":")
    return target.strip(), setting


def targeted(target: str | None, names: list[str | None], stems: list[str], where: str,
             among: str = "run") -> list[int]:  # fmt: skip
    """Indices of the scenarios that ``target`` (the NAME of ``NAME:key``) names, among
    scenarios of ``names`` (as their files and bases give them, before any override) read from
    files of ``stems``: every one for None; for a number, the one at that 1-based position;
    else the one of that name, else of that file stem. The one rule of ``cxsim run --set`` and
    of a sweep file's keys. An empty, ambiguous or unknown target is a ScenarioError starting
    with ``where`` (``--set 'ITEM'``, or a sweep file's line and field); ``among``: a run or a
    sweep, for the message."""
    count = len(names)
    if target is None:
        return list(range(count))
    if not target:
        raise ScenarioError(f"{where}: expected a scenario name, file stem or position before ':'")
    if target.isdigit():
        if 1 <= int(target) <= count:
            return [int(target) - 1]
        matches: list[int] = []
    else:
        matches = [i for i, name in enumerate(names) if name == target] or [
            i for i, stem in enumerate(stems) if stem == target
        ]
    if len(matches) == 1:
        return matches
    if matches:
        positions = ", ".join(str(i + 1) for i in matches)
        raise ScenarioError(
            f"{where}: {target!r} names scenarios {positions}; use the position instead"
        )
    known = ", ".join(f"{i + 1} {name or stems[i]!r}" for i, name in enumerate(names))
    raise ScenarioError(
        f"{where}: no scenario {target!r} in this {among}; name one of {known} "
        "(by name, file stem or position)"
    )


# --- YAML with line numbers -------------------------------------------------------------------


def read_yaml(
    text: str, filename: str, sections: str = "sections (time, population, strategy, ...)"
) -> tuple[dict, Lines]:
    """Safe-load a YAML mapping with the file and line where each value was written.

    Shared by every cxsim file format (scenarios, sweeps); ``sections`` says, in an error,
    what the top-level mapping should hold.
    """
    try:
        node, data, lines = _compose_and_construct(text, filename)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ScenarioError(
            f"{filename}:{line}: not valid YAML: {exc.reason}, found {_char(exc.character)}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{filename}{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(f"{filename}: not valid YAML: nested too deeply") from None
    if node is None:
        raise ScenarioError(
            f"{filename}: the file is empty; expected a mapping of sections such as "
            "'strategy:' (an empty mapping '{}' runs every default)"
        )
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise ScenarioError(
            f"{filename}:{node.start_mark.line + 1}: expected a mapping of {sections}, "
            f"found {_node_kind(node)}"
        )
    return data, lines


def _char(character: int | bytes | str) -> str:
    if isinstance(character, int):
        return f"character U+{character:04X}"
    return f"byte {character!r}" if isinstance(character, bytes) else repr(character)


_YAML12_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class ScenarioLoader(yaml.SafeLoader):
    """The safe loader, also reading YAML 1.2 numbers such as 1e6 (YAML 1.1 wants 1.0e+6)."""


ScenarioLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789"))


class _ScenarioDumper(yaml.SafeDumper):
    """Writes YAML that ScenarioLoader reads back the same: text such as '1e3' gets quotes."""


_ScenarioDumper.add_implicit_resolver(
    "tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789")
)


class _FlowMapping(dict):
    """A mapping written on one line: ``{name: billing, ...}``."""


_ScenarioDumper.add_representer(
    _FlowMapping,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)


def _compose_and_construct(text: str, filename: str) -> tuple[yaml.Node | None, Any, Lines]:
    """Parse once with the safe loader: the node tree (for line numbers) and the plain data."""
    loader = ScenarioLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            # Where the reader stopped is inside the deepest nesting it reached.
            raise ScenarioError(
                f"{filename}:{loader.line + 1}: not valid YAML: nested too deeply"
            ) from None
        lines: Lines = {}
        if not isinstance(node, yaml.MappingNode):
            return node, None, lines
        _index_lines(node, (), lines, filename, set())
        try:
            return node, loader.construct_document(node), lines
        except (ValueError, OverflowError, KeyError, TypeError, AttributeError) as exc:
            # A value YAML recognises but Python cannot build, e.g. '!!int abc', '!!bool maybe'
            # or a 5000-digit int.
            line = _unbuildable_line(loader, node)
            raise ScenarioError(
                f"{filename}:{line}: not valid YAML: a value cannot be read ({shorten(str(exc))})"
            ) from None
    finally:
        loader.dispose()


def _unbuildable_line(loader: yaml.SafeLoader, root: yaml.Node) -> int | str:
    """The line of the first value in ``root`` the loader cannot build ('?' if none alone)."""
    todo, seen = [root], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except Exception:  # noqa: BLE001 (whichever error the constructor raises)
                return node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(reversed(node.value))
    return "?"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the value {_show(node.value)}"
    tag = node.tag.rsplit(":", 1)[-1]
    return "a mapping" if tag == "map" else f"a {tag} (tag !!{tag})"  # e.g. !!set: a set


def _index_lines(
    node: yaml.Node, path: Path_, lines: Lines, filename: str, visited: set[int]
) -> None:
    lines[path] = (filename, node.start_mark.line + 1)
    if not isinstance(node, yaml.CollectionNode):
        return
    if id(node) in visited:
        return  # an alias of a section already indexed: no repeated (or endless) descent
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError(
                    f"{filename}:{key_node.start_mark.line + 1}: {_dotted(path)}: "
                    f"expected a key name, found {_node_kind(key_node)}"
                )
            key = key_node.value
            if key in seen:
                raise ScenarioError(
                    f"{filename}:{key_node.start_mark.line + 1}: "
                    f"{_dotted(path + (key,))}: key appears twice"
                )
            seen.add(key)
            _index_lines(value_node, path + (key,), lines, filename, visited)
            lines[path + (key,)] = (filename, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, filename, visited)


# --- overrides --------------------------------------------------------------------------------


def _parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
        for key, _ in pairs:
            _check_key(key, f"override {key!r}")
        return pairs
    if isinstance(overrides, str):
        overrides = [overrides]  # one "key=value", not a sequence of characters
    pairs = []
    for item in overrides:
        if not isinstance(item, str):
            raise ScenarioError(
                f"--set {item!r}: expected key=value text, e.g. strategy.detection=0.5"
            )
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set {item!r}: expected key=value, e.g. strategy.detection=0.5")
        key = key.strip()
        _check_key(key, f"--set {item!r}")
        try:
            value = yaml.load(raw, Loader=ScenarioLoader) if raw.strip() else None
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
            value = raw
        pairs.append((key, value))
    return pairs


def _check_key(key: Any, label: str) -> None:
    if isinstance(key, str) and ":" in key:
        raise ScenarioError(
            f"{label}: field names contain no ':'; 'scenario:key=value' picks one scenario "
            "of several and works with cxsim run and validate"
        )
    if not isinstance(key, str) or not all(part.strip() for part in key.split(".")):
        raise ScenarioError(
            f"{label}: expected a dotted field name such as strategy.detection or "
            "touchpoints.billing.bad"
        )


def _split(key: str, data: Any) -> Path_:
    """Dotted key to a path; list items by index or, for touchpoints, by name."""
    path: list[str | int] = []
    node = data
    for part in key.split("."):
        if isinstance(node, list):
            index = _list_index(node, part)
            path.append(index if index is not None else part)
            node = node[index] if index is not None else None
        else:
            path.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(path)


def _default_for(parts: list[str]) -> Any:
    """Plain-data default of a section an override reaches into but the file leaves out.

    A list section (touchpoints) starts as its default list, so that ``touchpoints.billing.bad``
    changes the shipped billing touchpoint; any other section starts empty (defaults apply).
    """
    model: Any = Scenario
    field = None
    for part in parts:
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return {}
        model = _inner_model(field.annotation)
    default = field.get_default(call_default_factory=True) if field is not None else None
    if isinstance(default, tuple | list):
        return [
            item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            for item in default
        ]
    return {}


def _list_index(items: list, part: str) -> int | None:
    if part.isdigit():
        return int(part) if int(part) < len(items) else None
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    return None


def _apply_override(data: dict, key: str, value: Any, filename: str) -> None:
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                names = [str(i.get("name")) for i in node if isinstance(i, dict)]
                raise ScenarioError(
                    f"--set {key}: no item {part!r} in {'.'.join(parts[:depth])}; "
                    f"expected an index or one of: {listed(names)}"
                )
            node = node[index]
        else:
            if part not in node or node[part] is None:
                node[part] = _default_for(parts[: depth + 1])
            node = node[part]
        if not isinstance(node, dict | list):
            raise ScenarioError(
                f"--set {key}: {'.'.join(parts[: depth + 1])} is a value, not a section"
            )
    last = parts[-1]
    if isinstance(node, list):
        index = _list_index(node, last)
        if index is None:
            names = [str(i.get("name")) for i in node if isinstance(i, dict)]
            raise ScenarioError(
                f"--set {key}: no item {last!r} in {'.'.join(parts[:-1])}; "
                f"expected an index or one of: {listed(names)}"
            )
        node[index] = value
    else:
        node[last] = value


# --- error messages ---------------------------------------------------------------------------


def _dotted(path: Iterable[str | int]) -> str:
    """A field path for a message; a key that is very long or not printable is shown short
    and quoted, so that the message stays one readable line."""
    parts = [str(p) if str(p).isprintable() else repr(str(p)) for p in path]
    return ".".join(shorten(p, 60) for p in parts) or "(top level)"


def locate(filename: str, lines: Lines, path: Path_) -> str:
    """``file:line`` where the value at ``path`` (or its nearest known parent) was written."""
    probe = tuple(path)
    while probe not in lines and probe:
        probe = probe[:-1]
    origin = lines.get(probe)
    if origin is None:
        return filename
    file, line = origin
    return f"{filename} (from --set)" if line == 0 else f"{file}:{line}"


_MAX_MESSAGES = 10

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 3


def describe(
    exc: ValidationError, data: Any, filename: str, lines: Lines, model: type[BaseModel] = Scenario
) -> str:
    """pydantic's errors as one line each: ``file:line: field: expected X, found Y``, with a
    "did you mean" for unknown keys taken from ``model`` (the schema that was validated)."""
    messages = []
    errors = [(_loc(err), err) for err in exc.errors()]
    missing = {loc for loc, err in errors if err["type"] == "missing"}
    unknown = {loc for loc, err in errors if err["type"] == "extra_forbidden"}
    # A misspelt required key is one mistake: say it once, at the misspelt key.
    renamed = {m: u for m in missing for u in unknown if u[:-1] == m[:-1]}
    errors = [(loc, err) for loc, err in errors if loc not in renamed]
    meant = {u: m[-1] for m, u in renamed.items()}
    item_failures = {loc[:depth] for loc, _ in errors for depth in range(len(loc))}
    for loc, err in errors:
        if err["type"] in ("too_short", "too_long") and loc in item_failures:
            continue  # pydantic counts failed items as missing; the item errors say why
        path = _dotted(loc)
        where = locate(filename, lines, loc)
        kind = err["type"]
        found = _found(err, data, loc)
        if kind == "extra_forbidden":
            hint = f" (did you mean {meant[loc]!r}? it is required)" if loc in meant else (
                _suggest(loc, model))  # fmt: skip
            messages.append(f"{where}: unknown key '{path}'{hint}")
        elif kind == "missing":
            messages.append(f"{where}: {path}: required field is missing")
        elif kind == "value_error" and not loc:
            messages.append(f"{where}: {_clean(err['msg'])}")
        elif kind == "value_error":
            # A check across fields of one section; the message says what it needs and found.
            messages.append(f"{where}: {path}: {_clean(err['msg'])}")
        elif kind in ("too_short", "too_long"):
            ctx = err.get("ctx") or {}
            bound = (
                f"at least {ctx.get('min_length')}"
                if kind == "too_short"
                else f"at most {ctx.get('max_length')}"
            )
            messages.append(
                f"{where}: {path}: expected {bound} item(s), found {ctx.get('actual_length')}"
            )
        elif kind == "invalid_key":
            parent = _dotted(loc[:-1])
            messages.append(f"{where}: {parent}: expected key names (text), found key {found}")
        else:
            messages.append(f"{where}: {path}: expected {_expected(err)}, found {found}")
    if len(messages) > _MAX_MESSAGES:
        more = len(messages) - _MAX_MESSAGES
        messages = messages[:_MAX_MESSAGES] + [f"... and {more} more problem(s)"]
    return "\n".join(messages)


def _loc(err: dict) -> Path_:
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _found(err: dict, data: Any, loc: Path_) -> str:
    if "input" in err and not isinstance(err["input"], dict):
        return _show(err["input"])
    node = data
    for p in loc:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return "nothing"
    return "a mapping" if isinstance(node, dict) else _show(node)


def _show(value: Any) -> str:
    """A found value, short enough for a one-line message."""
    if isinstance(value, date):
        return f"the date {value.isoformat()} (quote it to use it as text)"
    return shorten(_repr.repr(value))


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters, with '...' where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expected(err: dict) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    bounds = {
        "greater_than_equal": "a number >= {ge}",
        "greater_than": "a number > {gt}",
        "less_than_equal": "a number <= {le}",
        "less_than": "a number < {lt}",
    }
    if kind in bounds:
        return bounds[kind].format(**ctx)
    if kind == "value_error":
        return _clean(err["msg"])
    if kind in ("float_parsing", "float_type"):
        return "a number"
    if kind == "finite_number":
        return "a finite number"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "a whole number"
    if kind in ("bool_parsing", "bool_type"):
        return "true or false"
    if kind in ("enum", "literal_error"):
        listed_ = ctx.get("expected", "the listed values")
        if len(listed_) > 200:  # e.g. the 30 figure names: the schema lists them all
            listed_ = listed_[:150].rsplit(",", 1)[0] + ", ... (see `cxsim schema`)"
        return "one of " + listed_
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "a mapping of fields"
    if kind in ("tuple_type", "list_type"):
        return "a list"
    if kind == "string_type":
        return "text"
    return err["msg"][0].lower() + err["msg"][1:]


def _suggest(loc: Path_, model: Any = Scenario) -> str:
    """' (did you mean ...?)' for an unknown key, from the fields allowed where it stands."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return ""
        model = _inner_model(field.annotation)
    if not _is_model(model):
        return ""
    allowed = list(model.model_fields)
    lower = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(str(loc[-1]).lower(), list(lower), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {lower[close[0]]!r}?)"
    return f"; allowed here: {', '.join(allowed)}"


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _inner_model(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None

"""Fuzz cases: seeded scenario, variant and sweep files, each broken (or changed) one way.

A case is the files of one fresh folder and the ``cxsim`` arguments to run on them. Cases start
from the shipped files (``scenarios/*.yaml`` and the test scenario with events) and apply one
mutation of a named category (``CATEGORIES``): wrong types, booleans for numbers, out-of-range,
non-finite and huge numbers, huge and negative sizes, unknown, misspelt, duplicated and odd
unicode keys, deep nesting, non-UTF-8 bytes and byte-order marks, control characters, alias
bombs, tags that try to build objects, very long strings, empty and trivial files, lists where
mappings belong and the reverse, broken bases of variants, broken sweep designs, ``--set``
overrides, truncated files and random bytes. ``several_faults`` makes two or three mistakes at
once (its message may have one line per problem); ``valid_edit`` changes values within their
ranges, so that many cases are accepted and run. ``field`` is the dotted path the mutation
touched: a clean rejection names it or one of its parent sections.

Everything is a pure function of the seed: ``one(i, seed)`` gives the same case each time,
made alone.
"""

from __future__ import annotations

import copy
import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cxsim.loading import ScenarioLoader

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "case.yaml"
"""The file each case's command reads (a scenario, a variant or a sweep file)."""

SCENARIO_FILES = {
    "reactive.yaml": ROOT / "scenarios" / "reactive.yaml",
    "proactive.yaml": ROOT / "scenarios" / "proactive.yaml",
    "telecom.yaml": ROOT / "scenarios" / "telecom.yaml",
    "telecom_proactive.yaml": ROOT / "scenarios" / "telecom_proactive.yaml",
    "all_mechanisms.yaml": ROOT / "tests" / "scenarios" / "all_mechanisms.yaml",
}
BASES = ("reactive.yaml", "telecom.yaml", "all_mechanisms.yaml")
"""Scenarios without a base of their own: the starting points of scenario cases."""
VARIANTS = {"proactive.yaml": "reactive.yaml", "telecom_proactive.yaml": "telecom.yaml"}
SWEEPS = tuple(
    ROOT / "scenarios" / name
    for name in ("sweep_detection_vs_resolution.yaml", "sensitivity_morris.yaml",
                 "sensitivity_sobol.yaml", "uncertainty_telecom.yaml")
)  # fmt: skip


@dataclass
class Case:
    """One fuzz case: files to write into a fresh folder and the cxsim arguments to run."""

    id: int
    kind: str  # scenario, variant or sweep
    category: str
    files: dict[str, bytes]
    args: list[str]  # "{dir}" stands for the case's folder
    field: str | None = None
    several: bool = False


class Raw(str):
    """YAML text written as it is (a tag, an alias bomb, .nan), not as a quoted string."""


# --- values -----------------------------------------------------------------------------------

WRONG_TYPES = [
    "abc", "twelve", Raw("[]"), Raw("{}"), Raw("[1, 2]"), Raw("{a: 1}"), Raw("null"), Raw("~"),
    Raw("2020-01-01"), Raw("12:30:00"), Raw("!!binary aGVsbG8="), Raw("!!set {a, b}"),
    Raw("!!timestamp 2001-12-14t21:59:43.10-05:00"), Raw("'0.5'"), Raw('"1e3"'), Raw("0x1F"),
    Raw("0o17"), Raw("1_000"), Raw("!!str 5"), Raw("!!null ''"), Raw("[[[]]]"), Raw("''"),
    Raw("!!omap [a: 1, b: 2]"), Raw("!!pairs [a: 1]"), Raw("[a: 1]"), Raw("{? [a]: 1}"),
]  # fmt: skip
BOOLEANS = [Raw(b) for b in ("true", "false", "yes", "no", "on", "off", "True", "NO", "Y")]
OUT_OF_RANGE = [-1, -0.5, -1e-12, 1.000001, 1.5, 2, 11, 100, 1e6, 0, -0.0, 5e-324, 1e-320, 0.5]
NON_FINITE = [
    Raw(".nan"), Raw(".NaN"), Raw(".inf"), Raw("-.inf"), Raw("+.inf"), "nan", "inf", "-inf",
    "NaN", "Infinity", Raw("1e999"), Raw("-1e999"), Raw("1.0e+400"), float("nan"),
    Raw("!!float nan"), Raw("!!float .inf"), "nan weeks", "inf per week", "1e999 per month",
]  # fmt: skip
HUGE = [
    Raw("1e308"), Raw("1.7976931348623157e308"), Raw("-1e308"), Raw("1e300"), Raw("1e-308"),
    Raw("5e-324"), 10**30, -(10**30), 10**19, 2**63, 2**63 - 1, 2**64, 2**31, 10**300,
    -(10**300), Raw("9" * 4300), Raw("9" * 5000), Raw("1" + "0" * 400 + ".5"), 1e30, 1e15,
    Raw("123456789012345678901234567890.5"), "1e308 per day", "1e300 years", "1e9 weeks",
]  # fmt: skip
SIZES = [10**5, 10**6, 10**7, 10**9, 10**12, 10**18, 2**63 - 1, 2**63, 10**30, 1e9, 1e15, 1e30,
         1e100, 1e300, 99_999, 100_000, 100_001, 50_000, 10**300]  # fmt: skip
NEGATIVE = [-1, -(10**30), -1e300, -(2**63), -5, -0.0, -1e-300, "-3 weeks", "-1 per week"]
UNIT_STRINGS = ["13 weeks", "3 months", "1 year", "0 days", "2 quarters", "0.004 per week",
                "5% per month", "50 per month", "2 fortnights", "weeks", "3", "1e9 weeks",
                "-2 weeks", "0.5 per", "120% per year", "1 per nanosecond", "3 Months"]  # fmt: skip
SIZE_PATHS = [
    "population.customers", "population.prospects", "population.represents", "time.horizon",
    "network.mean_degree", "run.replications", "run.seed", "behaviour.memory_half_life",
    "behaviour.onboarding_steps", "behaviour.reviews.window", "behaviour.win_back.wait",
    "behaviour.negative_word_of_mouth.churned_steps", "behaviour.walk_away.survey.several",
    "economics.arpu.mean", "economics.arpu.sd", "strategy.costs.fixed",
    "strategy.costs.per_customer", "economics.retention_cost", "economics.support_cost",
    "behaviour.baseline_churn.alpha", "behaviour.baseline_churn.beta",
    "behaviour.baseline_churn.satisfaction_elasticity", "economics.acquisition_cost",
    "touchpoints.0.severity", "behaviour.walk_away.tolerance_sd",
    "economics.acquisition_to_retention", "strategy.start", "strategy.ramp",
    "behaviour.walk_away.a", "behaviour.walk_away.b",
]  # fmt: skip
ODD_KEYS = [
    "detecti\u200bon", "\uff44\uff45\uff54\uff45\uff43\uff54\uff49\uff4f\uff4e", "d\u00e9tection",
    "\u202edetection", "\U0001f642", " ", "a" * 1000, "key with spaces", "Detection",
    "detection ", "\u0434\u0435\u0442\u0435\u043a\u0446\u0438\u044f", "x.y", "a:b", "-", "<<",
    Raw("null"), Raw("1"), Raw("1.5"), Raw("true"), Raw("[a, b]"), Raw("'key'"), Raw("!!int 3"),
    "\u00a0", "strategy\u00ad", "\ud7ff",
]  # fmt: skip
OBJECT_TAGS = [
    Raw("!!python/object/apply:os.system ['echo fuzz > /dev/null']"),
    Raw("!!python/object:builtins.dict {}"), Raw("!!python/name:os.system"),
    Raw("!!python/module:os"), Raw("!!python/tuple [1, 2]"), Raw("!!python/bytes aGk="),
    Raw("!custom 1"), Raw("!<tag:yaml.org,2002:python/object/new:os.system> [ls]"),
    Raw("!!python/object/new:type ['x', [], {}]"), Raw("!!int abc"), Raw("!!float abc"),
    Raw("!!bool maybe"), Raw("!!map [1]"), Raw("!!seq {a: 1}"), Raw("!!str [1]"),
    Raw("!!merge x"), Raw("!!value 1"), Raw("!!yaml x"), Raw("!!binary '***'"),
]  # fmt: skip
SHARE_LEAVES = ("detection", "prevention", "quality_uplift", "outreach", "support_contact",
                "first_contact_resolution", "recovery_delight", "detection_delight",
                "visit_rate", "good", "bad", "problem_rate", "problem_fade", "ad_conversion",
                "rate", "conversion", "impact", "read_share", "post_rate",
                "post_rate_after_bad", "relaxation", "gain", "loss", "rewiring")  # fmt: skip


def alias_bomb(levels: int, width: int) -> Raw:
    """Billion laughs in one flow value: each anchor lists the one before ``width`` times."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return Raw("[" + ", ".join(parts) + "]")


def deep(depth: int, mapping: bool) -> Raw:
    return Raw("{a: " * depth + "1" + "}" * depth if mapping else "[" * depth + "]" * depth)


# --- data paths -------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def paths(data: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path below ``data`` (sections and values)."""
    out: list[Path_] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(
        data, list) else ()  # fmt: skip
    for key, value in items:
        out.append((*prefix, key))
        out.extend(paths(value, (*prefix, key)))
    return out


def leaves(data: Any) -> list[Path_]:
    return [p for p in paths(data) if not isinstance(get(data, p), dict | list)]


def get(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def put(data: Any, path: Path_, value: Any) -> None:
    """Set ``path`` to ``value``, making missing mappings on the way."""
    for part in path[:-1]:
        if isinstance(data, dict):
            if not isinstance(data.get(part), dict | list):
                data[part] = {}
            data = data[part]
        else:
            data = data[part]
    data[path[-1]] = value


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def parse_path(text: str) -> Path_:
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(data: Any, flow: bool = False) -> str:
    """YAML text of ``data`` with every :class:`Raw` value written as it is."""
    raws: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(str(node))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(node, dict):
            return {swap(k): swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = yaml.dump(swap(data), Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                     width=10**9, default_flow_style=flow)  # fmt: skip
    for i in reversed(range(len(raws))):  # reversed: @@RAW1@@ is not a prefix of @@RAW10@@
        text = text.replace(f"'@@RAW{i}@@'", raws[i]).replace(f"@@RAW{i}@@", raws[i])
    return text


def load(path: Path) -> tuple[str, Any]:
    """The text of a shipped file and a fresh copy of its data."""
    text, data = _read(path)
    return text, copy.deepcopy(data)


@functools.cache
def _read(path: Path) -> tuple[str, Any]:
    text = path.read_text(encoding="utf-8")
    return text, yaml.load(text, Loader=ScenarioLoader)


# --- mutations of data ------------------------------------------------------------------------

Mutation = Callable[[random.Random, dict], str | None]
"""Changes data in place; returns the dotted path it touched (None: the whole file)."""


def _leaf(rng: random.Random, data: dict, numeric: bool = False) -> Path_:
    choices = leaves(data)
    if numeric:
        choices = [p for p in choices if isinstance(get(data, p), int | float)
                   and not isinstance(get(data, p), bool)] or choices  # fmt: skip
    return rng.choice(choices)


def _value_mutation(pool: list, numeric: bool = True) -> Mutation:
    def mutate(rng: random.Random, data: dict) -> str:
        path = _leaf(rng, data, numeric)
        put(data, path, rng.choice(pool))
        return dotted(path)

    return mutate


def _out_of_range(rng: random.Random, data: dict) -> str:
    shares = [p for p in leaves(data) if p[-1] in SHARE_LEAVES]
    path = rng.choice(shares) if shares and rng.random() < 0.6 else _leaf(rng, data, True)
    put(data, path, rng.choice(OUT_OF_RANGE))
    return dotted(path)


def _at_size_path(pool: list) -> Mutation:
    def mutate(rng: random.Random, data: dict) -> str:
        path = parse_path(rng.choice(SIZE_PATHS))
        if path[0] == "touchpoints" and not isinstance(data.get("touchpoints"), list):
            path = ("population", "customers")
        value = rng.choice(pool)
        put(data, path, value)
        if path[-1] in ("a", "b"):  # the walk-away curve needs both
            put(data, (*path[:-1], "b" if path[-1] == "a" else "a"), rng.choice([1.0, value]))
        return dotted(path)

    return mutate


def _unit_strings(rng: random.Random, data: dict) -> str:
    path = parse_path(rng.choice(SIZE_PATHS[:20] + ["strategy.outreach", "behaviour.problem_fade",
                                                    "behaviour.ad_conversion"]))  # fmt: skip
    put(data, path, rng.choice(UNIT_STRINGS + HUGE[-3:] + NON_FINITE[-3:]))
    if rng.random() < 0.3:
        put(data, ("time", "step"), rng.choice(["day", "month", "quarter", "year", "weeks",
                                                "fortnight", "Month"]))  # fmt: skip
        data["time"].pop("steps_per_year", None)
        return f"{dotted(path)}|time"
    return dotted(path)


def _mapping_paths(data: dict) -> list[Path_]:
    return [(), *[p for p in paths(data) if isinstance(get(data, p), dict)]]


def _new_key(rng: random.Random, data: dict, pool: list) -> str:
    path = rng.choice(_mapping_paths(data))
    key = rng.choice(pool)
    get(data, path)[key] = rng.choice([1, "x", 0.5, None, Raw("{a: 1}")])
    if isinstance(key, Raw):  # may be read as a number or null: named where it stands
        return f"{dotted(path) or '(top level)'}|{key.strip(chr(39))}"
    return dotted((*path, key)) if path else str(key)


def _misspelt(rng: random.Random, data: dict) -> str:
    path = rng.choice([p for p in paths(data) if isinstance(p[-1], str)])
    parent, key = get(data, path[:-1]), path[-1]
    i = rng.randrange(len(key))
    edits = [key[:i] + key[i + 1 :], key[:i] + key[i] * 2 + key[i + 1 :], key.upper(),
             key.replace("_", "-"), key.replace("_", " "), key + "s", key[::-1]]  # fmt: skip
    new = rng.choice([e for e in edits if e and e != key] or [key + "x"])
    parent[new] = parent.pop(key)
    return dotted((*path[:-1], new))


def _unknown_key(rng: random.Random, data: dict) -> str:
    return _new_key(rng, data, ["colour", "strategy_name", "foo", "detection2", "x", "notes"])


def _odd_key(rng: random.Random, data: dict) -> str:
    return _new_key(rng, data, ODD_KEYS)


def _deep_nesting(rng: random.Random, data: dict) -> str:
    path = _leaf(rng, data) if rng.random() < 0.8 else ("strategy",)
    put(data, path, deep(rng.choice([100, 1000, 10_000, 100_000]), rng.random() < 0.5))
    return dotted(path)


def _alias_bomb(rng: random.Random, data: dict) -> str:
    path = _leaf(rng, data) if rng.random() < 0.7 else rng.choice(
        [("touchpoints",), ("events",), ("calibration", "unknowns", "strategy.detection"),
         ("strategy",), ("overrides", "strategy.detection"), ("description",)])  # fmt: skip
    put(data, path, alias_bomb(rng.choice([6, 9, 12]), rng.choice([9, 10])))
    return dotted(path)


def _object_tag(rng: random.Random, data: dict) -> str:
    path = _leaf(rng, data)
    put(data, path, rng.choice(OBJECT_TAGS))
    return dotted(path)


def _long_string(rng: random.Random, data: dict) -> str:
    n = rng.choice([10_000, 100_000, 1_000_000])
    text = rng.choice(["x", "ab ", "\u00e9", "9"]) * n
    targets = [p for p in leaves(data) if p[-1] in ("name", "description", "currency",
                                                    "department", "step", "base")]  # fmt: skip
    if rng.random() < 0.2:
        key = "k" * n
        get(data, rng.choice(_mapping_paths(data)))[key] = 1
        return "k"
    path = rng.choice(targets) if targets and rng.random() < 0.7 else _leaf(rng, data)
    put(data, path, text[:n])
    return dotted(path)


def _list_for_map(rng: random.Random, data: dict) -> str:
    path = rng.choice([p for p in _mapping_paths(data) if p])
    put(data, path, list(get(data, path).values()) if rng.random() < 0.7 else [])
    return dotted(path)


def _map_for_list(rng: random.Random, data: dict) -> str:
    lists = [p for p in paths(data) if isinstance(get(data, p), list)]
    if not lists:
        return _list_for_map(rng, data)
    path = rng.choice(lists)
    items = get(data, path)
    put(data, path, rng.choice([{str(i): v for i, v in enumerate(items)},
                                str(items[0]) if items else "x", {}]))  # fmt: skip
    return dotted(path)


def _remove(rng: random.Random, data: dict) -> str:
    path = rng.choice(paths(data))
    parent = get(data, path[:-1])
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return dotted(path)


def _touchpoint(i: int) -> dict:
    return {"name": f"t{i}", "stages": ["active"], "visit_rate": 0.1, "good": 0.1, "bad": 0.01}


def _flow(items: list) -> Raw:
    """A long list as one line of YAML (written faster than item by item)."""
    return Raw(yaml.dump(items, Dumper=_DUMPER, default_flow_style=True, width=10**9).strip())


def _structural(rng: random.Random, data: dict) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        data["touchpoints"] = []
    elif kind in (1, 2):
        n = rng.choice([99, 100, 101, 10_000])
        data["touchpoints"] = _flow([_touchpoint(i) for i in range(n)])
    elif kind == 3:
        tps = data.get("touchpoints") or [_touchpoint(0)]
        data["touchpoints"] = [*tps, copy.deepcopy(tps[0])]
    elif kind in (4, 5):
        n = rng.choice([1, 100, 101, 10_000])
        start, duration = rng.choice([(1, 1), (10**9, 10**9), (150, 10), (1, 10**30)])
        how = rng.choice(["scale", "set"])
        value = rng.choice([0.5, 2, 10, 1e308, 0, -1])
        data["events"] = _flow([{"name": f"e{i}", "start": start, "duration": duration,
                                 how: {"strategy.outreach": value}} for i in range(n)])  # fmt: skip
        return "events"
    elif kind == 6:
        data["events"] = [{"name": "x", "start": 1, "duration": 5,
                           "scale": {rng.choice(["touchpoints.nowhere.bad", "strategy.name",
                                                 "touchpoints.billing", "time.horizon",
                                                 "strategy.detection.x"]): 2}}]  # fmt: skip
        return "events"
    else:
        data["touchpoints"] = [{"name": rng.choice(["Billing", "baseline", "a-b", "", "1a"]),
                                "stages": ["active"]}]  # fmt: skip
    return "touchpoints"


def _valid_edit(rng: random.Random, data: dict) -> str:
    """Changes within the fields' ranges: the file should be accepted and run."""
    touched = []
    for _ in range(rng.randint(1, 3)):
        numeric = [p for p in leaves(data) if isinstance(get(data, p), int | float)
                   and not isinstance(get(data, p), bool) and p[0] != "run"]  # fmt: skip
        path = rng.choice(numeric)
        value = get(data, path)
        if path[-1] in SHARE_LEAVES:
            new = round(min(1.0, value * rng.uniform(0, 1.3)), 4)
        elif isinstance(value, int):
            new = rng.randint(max(0, value // 3), max(1, value * 2))
        else:
            new = round(value * rng.uniform(0.2, 3), 4)
        put(data, path, new)
        touched.append(path)
    extra = rng.randrange(6)
    if extra == 0:
        put(
            data,
            ("network", "kind"),
            rng.choice(["well_mixed", "watts_strogatz", "barabasi_albert", "erdos_renyi", "ring"]),
        )
    elif extra == 1:
        put(data, ("time", "step"), rng.choice(["day", "month", "quarter", "year"]))
        data["time"].pop("steps_per_year", None)
        data["time"]["horizon"] = rng.choice([4, 12, 30])
        touched.append(("time",))
    elif extra == 2:
        put(data, ("behaviour", "win_back", "enabled"), False)
    elif extra == 3:
        put(data, ("behaviour", "walk_away", "a"), rng.uniform(-4, 0))
        put(data, ("behaviour", "walk_away", "b"), rng.uniform(0, 2))
    elif extra == 4:
        put(data, ("population", "customers"), rng.choice([0, 1, 2, 50]))
        put(data, ("population", "prospects"), rng.choice([1, 2, 100]))
    return "|".join(dotted(p) for p in touched)


def _several(rng: random.Random, data: dict) -> str:
    pools = [WRONG_TYPES[:8], OUT_OF_RANGE[:6], BOOLEANS, NON_FINITE[:6]]
    touched = []
    for _ in range(rng.randint(2, 3)):
        path = _leaf(rng, data, True)
        put(data, path, rng.choice(rng.choice(pools)))
        touched.append(dotted(path))
    return "|".join(touched)


DATA_MUTATIONS: dict[str, Mutation] = {
    "wrong_type": _value_mutation(WRONG_TYPES),
    "bool_for_number": _value_mutation(BOOLEANS),
    "out_of_range": _out_of_range,
    "non_finite": _value_mutation(NON_FINITE),
    "huge_number": _value_mutation(HUGE),
    "huge_size": _at_size_path(SIZES),
    "negative_size": _at_size_path(NEGATIVE),
    "unit_string": _unit_strings,
    "unknown_key": _unknown_key,
    "misspelt_key": _misspelt,
    "odd_unicode_key": _odd_key,
    "deep_nesting": _deep_nesting,
    "alias_bomb": _alias_bomb,
    "object_tag": _object_tag,
    "long_string": _long_string,
    "list_for_map": _list_for_map,
    "map_for_list": _map_for_list,
    "removed_key": _remove,
    "structural_lists": _structural,
    "several_faults": _several,
    "valid_edit": _valid_edit,
}

# --- mutations of text ------------------------------------------------------------------------

TRIVIAL = [b"", b"   \n", b"# only a comment\n", b"---\n", b"...\n", b"~\n", b"null\n", b"[]\n",
           b"{}\n", b"0\n", b"'text'\n", b"- a\n- b\n", b"---\na: 1\n---\nb: 2\n", b"\n\n\n{}",
           b"%YAML 1.2\n---\n{}\n", b"%YAML 2.0\n---\n{}\n", b"\t{}", b"{", b"[", b"key", b":",
           b"- - - -", b"&a *a", b"&a [*a]", b"!!python/object/apply:os.system [ls]",
           b"%TAG !p! tag:yaml.org,2002:python/object:\n---\n!p!builtins.dict {}\n",
           b"\xef\xbb\xbf{}\n", b"\x00", b"{}\x00", b"a: 1\n" * 3]  # fmt: skip
_KEY_LINE = re.compile(rb"^\s*[A-Za-z_][\w]*:", re.MULTILINE)


def _duplicated_key(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    lines = text.split(b"\n")
    keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    if rng.random() < 0.3 and b"{name: " in text:
        return text.replace(b"{name: ", b"{name: twice, name: ", 1), "name"
    i = rng.choice(keyed)
    key = lines[i].split(b":")[0].strip().decode()
    return b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]]), key


def _non_utf8(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    kind = rng.randrange(7)
    if kind == 0:
        return text.decode().replace("description: ", "description: caf\u00e9 ", 1).encode(
            "latin-1", "replace"), None  # fmt: skip
    if kind == 1:
        return text.decode().encode("utf-16"), None
    if kind == 2:
        return text.decode().encode("utf-32"), None
    bad = rng.choice([b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80", b"\xe9"])
    i = rng.randrange(len(text) + 1)
    return text[:i] + bad + text[i:], None


def _bom(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    kind = rng.randrange(5)
    if kind == 0:
        return b"\xef\xbb\xbf" + text, None
    if kind == 1:
        return text.replace(b"\n", b"\r\n"), None
    if kind == 2:
        return text.replace(b"\n", b"\r"), None
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice([b"\xef\xbb\xbf", b"\t"]) + text[i:], None


def _control(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    char = rng.choice(["\x00", "\x07", "\x1b", "\x7f", "\u0085", "\u2028", "\ufeff", "\ufffe",
                       "\x0c", "\x0b", "\U0010ffff", "\x1f"])  # fmt: skip
    i = rng.randrange(len(text) + 1)
    return text[:i] + char.encode("utf-8", "surrogatepass") + text[i:], None


def _truncated(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    return text[: rng.randrange(len(text) + 1)], None


def _random_bytes(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    data = bytearray(text)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data), None


def _trivial(rng: random.Random, text: bytes) -> tuple[bytes, str | None]:
    return rng.choice(TRIVIAL), None


TEXT_MUTATIONS: dict[str, Callable[[random.Random, bytes], tuple[bytes, str | None]]] = {
    "duplicated_key": _duplicated_key,
    "non_utf8": _non_utf8,
    "bom_and_line_ends": _bom,
    "control_chars": _control,
    "truncated": _truncated,
    "random_bytes": _random_bytes,
    "empty_or_trivial": _trivial,
}

# --- the three kinds of case ------------------------------------------------------------------

SET_KEYS = ["strategy.detection", "population.customers", "time.horizon", "touchpoints.billing.bad",
            "touchpoints.0.good", "touchpoints.nowhere.bad", "economics.arpu.sd", "strategy",
            "run.replications", "network.kind", "x.y", "strategy..detection", "",
            "proactive:strategy.detection", "9:strategy.outreach", "touchpoints.99.bad",
            "behaviour.walk_away.a", "events.0.start", "name", "time.step",
            "population.customers.x", "d\u00e9tection"]  # fmt: skip


def _set_override(rng: random.Random) -> tuple[list[str], str]:
    key = rng.choice(SET_KEYS)
    value = rng.choice([*WRONG_TYPES, *NON_FINITE, *HUGE[:18], *SIZES, *NEGATIVE, *BOOLEANS,
                        *UNIT_STRINGS, *OBJECT_TAGS[:4], "0.5", "", "[" * 10_000,
                        alias_bomb(9, 9), "x" * 100_000])  # fmt: skip
    text = str(value) if not isinstance(value, float) else repr(value)
    if rng.random() < 0.05:
        return ["--set", rng.choice(["novalue", "=1", "a b=1"])], "--set"
    return ["--set", f"{key}={text}"], key.split(":")[-1] or "--set"


def _files_of(names: list[str]) -> dict[str, bytes]:
    return {name: _read(SCENARIO_FILES[name])[0].encode() for name in names}


def _mutated(rng: random.Random, category: str, text: str, data: Any) -> tuple[bytes, str | None]:
    """The file's bytes after one mutation of ``category`` (of its data or its text)."""
    if category in TEXT_MUTATIONS:
        return TEXT_MUTATIONS[category](rng, text.encode())
    touched = DATA_MUTATIONS[category](rng, data)  # data is the caller's own copy (see load)
    return render(data, flow=rng.random() < 0.1).encode(), touched


SCENARIO_CATEGORIES = [*DATA_MUTATIONS, *TEXT_MUTATIONS, "set_override"]
VARIANT_CATEGORIES = [*SCENARIO_CATEGORIES, "base_target", "base_chain", "mutated_base"]
SCENARIO_ONLY = ("huge_size", "negative_size", "unit_string", "structural_lists", "valid_edit")
"""Mutations that write scenario fields (a sweep file has its own: the sweep_ categories)."""
SWEEP_CATEGORIES = [*(c for c in DATA_MUTATIONS if c not in SCENARIO_ONLY), *TEXT_MUTATIONS,
                    "sweep_size", "sweep_parameters", "sweep_scenarios",
                    "valid_sweep_edit"]  # fmt: skip
CATEGORIES = {"scenario": SCENARIO_CATEGORIES, "variant": VARIANT_CATEGORIES,
              "sweep": SWEEP_CATEGORIES}  # fmt: skip


def scenario_case(rng: random.Random, i: int, category: str) -> Case:
    name = rng.choice(BASES)
    text, data = load(SCENARIO_FILES[name])
    args = ["validate", "{dir}/" + ENTRY]
    if category == "set_override":
        extra, touched = _set_override(rng)
        body = _read(SCENARIO_FILES[name])[0].encode()
        return Case(i, "scenario", category, {ENTRY: body}, [*args, *extra], touched)
    body, touched = _mutated(rng, category, text, data)
    return Case(i, "scenario", category, {ENTRY: body}, args, touched,
                several=category == "several_faults")  # fmt: skip


BASE_TARGETS = [
    "missing.yaml", "", " ", ENTRY, "sub", "sub/", ".", "/", "/dev/zero", "/dev/null",
    "/dev/stdin", "/etc/passwd", "/etc/hostname", Raw('"base\\0.yaml"'), "x" * 100_000 + ".yaml",
    "x" * 300 + ".yaml", "base.yaml\n", Raw("[base.yaml]"), Raw("1"), Raw("null"),
    Raw("{a: 1}"), "../../../../../../etc/hostname", "~/base.yaml", "BASE.YAML", "base.yaml ",
    "sweep.yaml", "bad.yaml", "sub/../base.yaml", "./base.yaml", Raw("!!binary YmFzZS55YW1s"),
    "base.yaml" + "\u200b", "base.yaml/x", "other.yaml",
]  # fmt: skip


def variant_case(rng: random.Random, i: int, category: str) -> Case:
    variant_name = rng.choice(list(VARIANTS))
    base_name = VARIANTS[variant_name] if rng.random() < 0.7 else rng.choice(BASES)
    text, data = load(SCENARIO_FILES[variant_name])
    base_text, base_data = load(SCENARIO_FILES[base_name])
    data["base"] = "base.yaml"
    files = {"base.yaml": base_text.encode()}
    args = ["validate", "{dir}/" + ENTRY]
    touched: str | None = "base"
    if category == "set_override":
        extra, touched = _set_override(rng)
        return Case(i, "variant", category, {**files, ENTRY: render(data).encode()},
                    [*args, *extra], touched)  # fmt: skip
    if category == "base_target":
        data["base"] = rng.choice(BASE_TARGETS)
        touched = None  # a base that reads but does not fit is blamed on its own lines
        files["sub/readme.txt"] = b"a folder\n"
        files["sweep.yaml"] = SWEEPS[0].read_bytes()
        files["bad.yaml"] = b"strategy: {detection: 2}\n\xff"
        files["other.yaml"] = b"base: " + ENTRY.encode() + b"\nname: other\n"
        body = render(data).encode()
    elif category == "base_chain":
        n = rng.choice([2, 7, 8, 9, 12])
        loop = rng.random() < 0.3
        for k in range(n):
            files[f"b{k}.yaml"] = f"base: b{k + 1}.yaml\nname: b{k}\n".encode()
        files[f"b{n}.yaml"] = (f"base: b{rng.randrange(n)}.yaml\n" if loop else "").encode() + (
            base_text.encode())  # fmt: skip
        data["base"] = "b0.yaml"
        body = render(data).encode()
    elif category == "mutated_base":
        sub = rng.choice([c for c in SCENARIO_CATEGORIES if c != "set_override"])
        files["base.yaml"], touched = _mutated(rng, sub, base_text, base_data)
        body = render(data).encode()
        return Case(i, "variant", f"mutated_base:{sub}", {**files, ENTRY: body}, args, touched,
                    several=sub == "several_faults")  # fmt: skip
    else:
        body, touched = _mutated(rng, category, render(data), data)
    return Case(i, "variant", category, {**files, ENTRY: body}, args, touched,
                several=category == "several_faults")  # fmt: skip


def _sweep_size(rng: random.Random, data: dict) -> str:
    """Designs too large to make: huge counts, or a grid of many long axes."""
    key = rng.choice(["points", "replications", "levels", "steps", "grid", "seed"])
    value = rng.choice([10**3, 10**5, 10**6, 10**9, 10**12, 10**30, 2**63, 1e9, 2**20, 2**40])
    if key not in ("steps", "grid"):
        data[key] = value
        return key
    data["design"] = "grid"
    data.pop("points", None)
    axes = rng.choice([1, 3, 6]) if key == "grid" else 1
    steps = 100 if key == "grid" else value
    keys = [f"touchpoints.{t}.bad" for t in ("billing", "delivery", "product")] + [
        "strategy.outreach", "strategy.detection", "behaviour.problem_fade"]  # fmt: skip
    data["parameters"] = {k: {"low": 0.0, "high": 0.01, "steps": steps} for k in keys[:axes]}
    return "parameters"


SWEEP_PARAMETERS = [
    ("strategy.detection", {"low": -1.0, "high": 2.0}),
    ("strategy.detection", {"low": 0.5, "high": 0.5}),
    ("strategy.nothing", {"low": 0.0, "high": 1.0}),
    ("nobody:strategy.detection", {"low": 0.0, "high": 1.0}),
    ("9:strategy.detection", {"low": 0.0, "high": 1.0}),
    (":strategy.detection", {"low": 0.0, "high": 1.0}),
    ("strategy", {"low": 0.0, "high": 1.0}),
    ("touchpoints.billing.bad", {"low": 0.0, "high": 0.99}),
    ("touchpoints.nowhere.bad", {"low": 0.0, "high": 0.1}),
    ("population.customers", {"low": 0, "high": 10**12}),
    ("population.customers", {"low": 1, "high": 3000}),
    ("time.horizon", {"low": 1, "high": 10**9}),
    ("network.kind", ["ring", "well_mixed", "hexagon"]),
    ("strategy.detection", {"distribution": "lognormal", "mu": 1000, "sigma": 1}),
    ("strategy.detection", {"distribution": "lognormal", "mu": -3, "sigma": 1e308}),
    ("strategy.detection", {"distribution": "normal", "mean": 0.5, "sd": 1e308}),
    ("strategy.detection", {"distribution": "normal", "mean": 0.5, "sd": 0.1, "low": 0}),
    ("strategy.detection", {"distribution": "triangular", "low": 0, "mode": 1, "high": 1}),
    ("strategy.detection", {"distribution": "weibull", "low": 0, "high": 1}),
    ("strategy.detection", {"low": 1e-308, "high": 1e308}),
    ("strategy.detection", {"low": 0.0, "high": 1.0, "steps": 1}),
    ("strategy.detection", [True, False]),
    ("strategy.detection", ["0.5", "abc"]),
    ("strategy.detection", []),
    ("economics.arpu.sd", {"low": 0.0, "high": 1e308}),
    ("population.represents", {"low": 1.0, "high": 1e300}),
    ("strategy.costs.fixed", {"low": 0.0, "high": 1e30}),
    ("behaviour.walk_away.survey.after_one", {"low": 0.01, "high": 0.99}),
    ("run.seed", {"low": 0, "high": 10**30}),
    ("run.replications", [1, 10**9]),
    ("events.0.start", [1, 2]),
    ("strategy.detection", {"distribution": "uniform", "low": 0.0, "high": 0.9}),
]  # fmt: skip


def _sweep_parameter(rng: random.Random, data: dict) -> str:
    key, value = rng.choice(SWEEP_PARAMETERS)
    if isinstance(value, dict) and "distribution" in value:
        data["design"] = rng.choice(["monte_carlo", "uncertainty", "lhs"])
        data["points"] = 4
    elif isinstance(value, dict) and "steps" not in value and not isinstance(value, list):
        data["design"] = rng.choice(["lhs", "morris", "sobol", "monte_carlo"])
        data["points"] = {"sobol": 4, "morris": 2}.get(data["design"], 4)
    else:
        data["design"] = "grid"
        data.pop("points", None)
        if isinstance(value, dict) and "steps" not in value:
            value = {**value, "steps": 3}
    data["parameters"] = {key: value}  # the file's others may not suit the new design
    return key.split(":")[-1] or "parameters"


def _sweep_scenarios(rng: random.Random, data: dict) -> str:
    target = rng.choice([t for t in BASE_TARGETS if not isinstance(t, Raw) or "\\0" in t]
                        + ["reactive.yaml", "case.yaml", "telecom.yaml"])  # fmt: skip
    kind = rng.randrange(4)
    if kind == 0:
        data["scenarios"] = [target]
    elif kind == 1:
        data["scenarios"] = [*data["scenarios"], target]
    elif kind == 2:
        data["scenarios"] = ["reactive.yaml"] * rng.choice([2, 1000])
    else:
        data["scenarios"] = rng.choice([[], "reactive.yaml", Raw("{a: 1}"), [["reactive.yaml"]]])
    return "scenarios"


def _sweep_overrides(rng: random.Random, data: dict) -> str:
    key = rng.choice(SET_KEYS[:12])
    value = rng.choice([*WRONG_TYPES[:10], *HUGE[:10], *SIZES[:8], alias_bomb(9, 9), 0.5])
    data["overrides"] = {key: value} if rng.random() < 0.5 else {**data.get("overrides", {}),
                                                                 key: value}  # fmt: skip
    return f"overrides|{key.split(':')[-1]}"


def _valid_sweep(rng: random.Random, data: dict) -> str:
    data["replications"] = rng.randint(1, 3)
    data["seed"] = rng.randrange(10**6)
    if data.get("design") != "grid":
        data["points"] = {"sobol": 8, "morris": 2}.get(data.get("design"), rng.randint(1, 20))
    data["overrides"] = {**data.get("overrides", {}),
                         "population.customers": rng.randint(10, 300),
                         "time.horizon": rng.randint(2, 20)}  # fmt: skip
    return "overrides"


SWEEP_MUTATIONS: dict[str, Mutation] = {
    "sweep_size": _sweep_size,
    "sweep_parameters": _sweep_parameter,
    "sweep_scenarios": lambda rng, data: (
        _sweep_overrides if rng.random() < 0.4 else _sweep_scenarios
    )(rng, data),  # fmt: skip
    "valid_sweep_edit": _valid_sweep,
}


def sweep_case(rng: random.Random, i: int, category: str) -> Case:
    text, data = load(rng.choice(SWEEPS))
    files = _files_of(list(SCENARIO_FILES))
    files["sub/readme.txt"] = b"a folder\n"
    files["bad.yaml"] = b"strategy: {detection: 2}\n"
    args = ["sweep", "--print-problem", "{dir}/" + ENTRY]
    if category in SWEEP_MUTATIONS:
        touched = SWEEP_MUTATIONS[category](rng, data)
        body = render(data).encode()
    else:
        body, touched = _mutated(rng, category, text, data)
    return Case(i, "sweep", category, {**files, ENTRY: body}, args, touched,
                several=category == "several_faults")  # fmt: skip


KINDS = {"scenario": (scenario_case, 0.5), "variant": (variant_case, 0.25),
         "sweep": (sweep_case, 0.25)}  # fmt: skip


def one(i: int, seed: int = 0, kinds: tuple[str, ...] = tuple(KINDS)) -> Case:
    """Case ``i`` of the series ``seed`` makes."""
    rng = random.Random(f"{seed}:{i}")
    kind = rng.choices(kinds, [KINDS[k][1] for k in kinds])[0]
    category = rng.choice(CATEGORIES[kind])
    return KINDS[kind][0](rng, i, category)

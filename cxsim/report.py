"""The strategist's report page: one self-contained ``report.html`` per results folder.

The page is written for a board, not for a modeller: the question the run asks, the answer in
plain words, the headline table, every other table and chart with a one-line reading, the
scenarios exactly as run and how to reproduce the run. Whoever builds the content formats every
number; this module only lays the page out. Charts are embedded as base64 PNG data and the CSS is
inline, so the file can be mailed or archived alone and opening it makes no network request.

The layout lives in the jinja2 template ``cxsim/templates/report.html.j2`` (shipped as package
data). Autoescaping is on because scenario names and YAML are text a user wrote.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEMPLATE = "report.html.j2"
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Chart:
    path: Path  # a PNG written in the results folder
    title: str
    reading: str  # one sentence: what the chart says, for someone who never saw the model


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]  # already formatted text cells
    intro: str = ""  # a sentence above the table
    note: str = ""  # a sentence below (definitions, assumptions)
    numeric_from: int = 1  # columns from this index on are right-aligned numbers

    def __post_init__(self) -> None:
        # A ragged row would silently shift cells under the wrong heading; fail where it is built.
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {i} has {len(row)} cells "
                    f"for {len(self.columns)} columns"
                )
        if not 0 <= self.numeric_from <= len(self.columns):
            raise ValueError(f"table {self.title!r}: numeric_from {self.numeric_from} out of range")


@dataclass(frozen=True)
class ScenarioText:
    name: str
    source: str  # the file it came from
    yaml: str  # the scenario as run (resolved YAML text)


@dataclass(frozen=True)
class Reproduce:
    command: str  # the exact command line
    seed: int
    replications: int
    engine: str
    versions: dict[str, str]  # python, cxsim, mesa, numpy, ...
    git_commit: str | None
    wall_seconds: float
    created: str  # ISO time


@dataclass(frozen=True)
class ReportContent:
    title: str  # e.g. "reactive vs proactive CX"
    question: str  # a short paragraph: what this run asks
    answer: str  # one or two sentences: the headline answer in plain words
    headline: Table  # figure | each scenario (mean [95% CI]) | paired difference(s) [95% CI]
    tables: list[Table]  # e.g. revenue lost by touchpoint, by department, break-even, definitions
    charts: list[Chart]
    scenarios: list[ScenarioText]
    reproduce: Reproduce


@dataclass(frozen=True)
class _EmbeddedChart:
    """A chart as the template needs it: its PNG as a data URI plus its pixel size."""

    title: str
    reading: str
    src: str
    width: int
    height: int


def _embed(chart: Chart) -> _EmbeddedChart:
    data = Path(chart.path).read_bytes()
    # Only PNG is promised by the data URI's media type; anything else would show a broken image.
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError(f"chart {chart.title!r}: {chart.path} is not a PNG file")
    # The IHDR chunk right after the signature holds width and height; giving them to <img>
    # lets the browser reserve the right box (aspect ratio) before decoding the image.
    width, height = struct.unpack(">II", data[16:24])
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return _EmbeddedChart(chart.title, chart.reading, src, width, height)


def _duration(seconds: float) -> str:
    """Wall time as a person reads it: 4.2 s, 3 min 05 s, 2 h 07 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cxsim", "templates"),
        autoescape=True,  # names and YAML are user text: never let them become markup
        undefined=jinja2.StrictUndefined,  # a misspelt field in the template is an error, not ""
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template() -> jinja2.Template:
    """The page's template, compiled on first use (a hundredth of a second) and kept."""
    return _environment().get_template(TEMPLATE)


def render(content: ReportContent) -> str:
    """The report page for ``content`` as HTML text."""
    return template().render(
        c=content,
        charts=[_embed(chart) for chart in content.charts],
        wall_time=_duration(content.reproduce.wall_seconds),
    )


def write_report(content: ReportContent, out: Path) -> Path:
    """Write ``out/report.html`` and return its path.

    The page is written under a temporary name in the same folder and then renamed over the old
    one, so a reader (or a crash half way) never sees a truncated page.
    """
    out = Path(out)
    html = render(content)  # render first: a bad chart must not leave a temporary file behind
    target = out / REPORT_NAME
    # A hidden name unique to this writer; opened with "x" so the usual umask applies (mkstemp
    # would leave the page readable by its owner only).
    tmp = out / f".{REPORT_NAME}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(html)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target

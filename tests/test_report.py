"""The report page: built from small synthetic content, checked as text and in headless Chromium."""

from __future__ import annotations

import base64
import importlib.util
import tomllib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape
from matplotlib.figure import Figure

from cxsim import report
from cxsim.report import Chart, ReportContent, Reproduce, ScenarioText, Table, render, write_report
from tests.browser import open_page, visible_size

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_NAME = '<script>alert("name")</script> & co'
HOSTILE_YAML = "name: x\nnote: </pre><img src=x onerror=alert(1)>\n"


def _chart(folder: Path, name: str, size: tuple[float, float], kind: str) -> Path:
    # Figure without pyplot: no global state shared with other tests.
    fig = Figure(figsize=size, dpi=100)
    ax = fig.subplots()
    weeks = list(range(27))
    if kind == "line":
        ax.plot(weeks, [1000 - 6 * w for w in weeks], label="reactive")
        ax.plot(weeks, [1000 - 3 * w for w in weeks], label="proactive")
        ax.legend()
    else:
        ax.bar(["billing", "support", "delivery", "onboarding"], [42.0, 31.5, 12.25, 8.0])
    ax.set_title(name)
    path = folder / f"{name}.png"
    fig.savefig(path)
    return path


def synthetic_content(folder: Path) -> ReportContent:
    """A complete ReportContent with real PNG charts written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    charts = [
        Chart(
            _chart(folder, "customers", (8, 4.5), "line"),
            "Customers over time",
            "Proactive CX keeps about 80 more customers by week 26.",
        ),
        Chart(
            _chart(folder, "loss_by_touchpoint", (6, 4), "bar"),
            "Revenue lost by touchpoint",
            "Billing problems cost the most revenue, support is second.",
        ),
        Chart(
            _chart(folder, "tall", (5, 10), "bar"),
            "A tall chart",
            "A portrait figure must scale like the landscape ones.",
        ),
    ]
    headline = Table(
        title="Headline figures",
        columns=["Figure", "reactive", "proactive", "proactive − reactive"],
        rows=[
            [
                "Customers lost",
                "18.2% [17.5%, 18.9%]",
                "12.1% [11.6%, 12.7%]",
                "−6.1 pp [−6.9, −5.3]",
            ],
            ["Revenue lost (€k)", "412 [398, 426]", "280 [269, 291]", "−132 [−147, −117]"],
        ],
        intro="Mean over 20 replications, 95% confidence intervals in brackets.",
        note="Differences are paired: both scenarios share the seeds of each replication.",
    )
    tables = [
        Table(
            title="Revenue lost by touchpoint",
            columns=["Touchpoint", "reactive (€k)", "proactive (€k)", "share of loss"],
            rows=[
                ["billing", "173", "101", "42%"],
                ["support", "130", "92", "31%"],
                ["delivery", "109", "87", "27%"],
            ],
            intro="Where customers who left had their last bad experience.",
        ),
        Table(
            title="Revenue lost by department",
            columns=["Department", "Owner", "reactive (€k)", "proactive (€k)"],
            rows=[["Finance", "CFO", "173", "101"], ["Operations", "COO", "239", "179"]],
            numeric_from=2,
        ),
        Table(
            title="Break-even cost",
            columns=["Measure", "Value"],
            rows=[["Most proactive CX may cost per customer and year", "€41 [€36, €46]"]],
            note="Break-even: the cost at which the saved revenue is used up.",
        ),
    ]
    scenarios = [
        ScenarioText("reactive", "scenarios/reactive.yaml", "name: reactive\nstrategy: {}\n"),
        ScenarioText(HOSTILE_NAME, "scenarios/odd.yaml", HOSTILE_YAML),
    ]
    reproduce = Reproduce(
        command="cxsim run scenarios/reactive.yaml scenarios/proactive.yaml --replications 20",
        seed=12345,
        replications=20,
        engine="vector",
        versions={"python": "3.11.2", "cxsim": "0.1.0", "mesa": "3.3.0", "numpy": "2.1.0"},
        git_commit="0123456789abcdef0123456789abcdef01234567",
        wall_seconds=125.4,
        created="2025-01-31T09:30:00+00:00",
    )
    return ReportContent(
        title="Reactive vs proactive CX",
        question="Does finding problems before customers report them keep more revenue?",
        answer="Yes: proactive CX loses about a third less revenue than reactive service.",
        headline=headline,
        tables=tables,
        charts=charts,
        scenarios=scenarios,
        reproduce=reproduce,
    )


class _Page(HTMLParser):
    """What the checks need from the page: attributes, ids, tables as (tag, classes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.tables: list[list[list[tuple[str, str, str]]]] = []
        self._cell: list | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        for name, store in (("src", self.srcs), ("href", self.hrefs), ("id", self.ids)):
            if a.get(name) is not None:
                store.append(a[name])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = [tag, a.get("class") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell[0], self._cell[1], self._cell[2].strip()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[2] += data


def _parse(text: str) -> _Page:
    parsed = _Page()
    parsed.feed(text)
    parsed.close()
    return parsed


def _pixels(path: Path) -> float:
    """Width over height of a PNG, from its IHDR chunk."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big") / int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[ReportContent, Path]:
    folder = tmp_path_factory.mktemp("results")
    content = synthetic_content(folder)
    return content, write_report(content, folder)


def test_every_chart_is_embedded_once_with_its_exact_bytes(written):
    content, out = written
    srcs = _parse(out.read_text(encoding="utf-8")).srcs
    assert len(srcs) == len(content.charts)
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in srcs)
    decoded = [base64.b64decode(s[len(prefix) :], validate=True) for s in srcs]
    for chart in content.charts:
        assert decoded.count(chart.path.read_bytes()) == 1, chart.title


def test_images_carry_their_pixel_size(written):
    content, out = written
    text = out.read_text(encoding="utf-8")
    # 8 x 4.5 inches at 100 dpi, the first chart
    assert 'width="800" height="450"' in text
    assert text.count("<img ") == len(content.charts)


def test_user_text_is_escaped(written):
    _, out = written
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "onerror=alert(1)>" not in text
    assert escape(HOSTILE_NAME) in text
    assert escape(HOSTILE_YAML) in text
    # the hostile YAML must not have closed the <pre> nor added an image
    assert _parse(text).tags["img"] == 3


def test_tables_are_laid_out_cell_by_cell(written):
    content, out = written
    text = out.read_text(encoding="utf-8")
    tables = _parse(text).tables
    shown = [content.headline, *content.tables]
    assert len(tables) == len(shown) + 1  # and the versions table
    for table, got in zip(shown, tables, strict=False):
        assert f">{escape(table.title)}</h" in text
        assert [cell[2] for cell in got[0]] == table.columns
        assert [[cell[2] for cell in row] for row in got[1:]] == table.rows
        for row in got:
            for i, (_, classes, _) in enumerate(row):
                assert ("num" in classes.split()) == (i >= table.numeric_from), (table.title, i)
    for sentence in ("Mean over 20 replications", "Differences are paired", "Break-even:"):
        assert sentence in text
    versions = tables[-1]
    assert [[cell[2] for cell in row] for row in versions[1:]] == [
        [k, v] for k, v in content.reproduce.versions.items()
    ]


def test_every_section_and_reading_is_on_the_page(written):
    content, out = written
    text = out.read_text(encoding="utf-8")
    for piece in (
        content.question,
        content.answer,
        *(c.reading for c in content.charts),
        *(c.title for c in content.charts),
        content.reproduce.command,
        content.reproduce.git_commit,
        content.reproduce.created,
        "2 min 05 s",
        "Scenarios as run",
        "How to reproduce",
        "scenarios/odd.yaml",
    ):
        assert escape(piece) in text, piece
    assert text.count("<details>") == len(content.scenarios)
    assert text.count("<figcaption>") == len(content.charts)
    assert "@media print" in text


def test_the_page_asks_for_nothing_outside_itself(written):
    _, out = written
    text = out.read_text(encoding="utf-8")
    page = _parse(text)
    assert "http://" not in text and "https://" not in text
    assert all(s.startswith("data:image/png;base64,") for s in page.srcs)
    # every link is an anchor to a section of the page itself
    assert page.hrefs and all(h.startswith("#") for h in page.hrefs)
    assert {h[1:] for h in page.hrefs} <= set(page.ids)
    assert page.tags["script"] == page.tags["link"] == page.tags["iframe"] == 0


def test_write_report_replaces_the_page_and_leaves_no_temporary_file(tmp_path):
    content = synthetic_content(tmp_path)
    out = write_report(content, tmp_path)
    assert out == tmp_path / "report.html"
    first = out.read_text(encoding="utf-8")
    assert first == render(content)
    assert write_report(content, tmp_path) == out
    assert out.read_text(encoding="utf-8") == first
    expected = {"report.html", *(c.path.name for c in content.charts)}
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_a_chart_that_is_not_a_png_fails_before_anything_is_written(tmp_path):
    content = synthetic_content(tmp_path)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    bad = ReportContent(**{**vars(content), "charts": [Chart(fake, "Fake", "Nothing.")]})
    with pytest.raises(ValueError, match="not a PNG"):
        write_report(bad, tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_ragged_table_is_refused():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        Table("t", ["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="numeric_from"):
        Table("t", ["a", "b"], [], numeric_from=3)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.24, "4.2 s"), (59.9, "59.9 s"), (185, "3 min 05 s"), (7630, "2 h 07 min")],
)
def test_wall_time_reads_like_a_duration(seconds, text):
    assert report._duration(seconds) == text


def test_the_template_is_declared_as_package_data():
    # pip install . (not -e) copies only what package-data names; the page cannot render without it
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["cxsim"]
    package = ROOT / "cxsim"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    templates = set((package / "templates").iterdir())
    assert package / "templates" / report.TEMPLATE in templates
    assert templates <= shipped


def test_the_page_in_headless_chromium(written):
    content, out = written
    with open_page(out.as_uri()) as (page, problems):
        sizes = visible_size(page, "img")
        assert len(sizes) == len(content.charts)
        assert all(w > 0 and h > 0 for w, h in sizes), sizes
        # charts scale to the column: none wider than the page, proportions kept
        column = page.eval_on_selector("main", "e => e.clientWidth")
        assert all(w <= column for w, _ in sizes)
        for (w, h), chart in zip(sizes, content.charts, strict=True):
            assert w / h == pytest.approx(_pixels(chart.path), rel=0.02), chart.title
            assert h <= 0.85 * 900 + 1  # a tall chart fits the window
        assert page.is_visible("#headline table")
        assert all(w > 0 and h > 0 for w, h in visible_size(page, "#headline td"))
        # nothing sticks out sideways on a laptop screen
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.locator("script").count() == 0
        assert page.locator("details pre").first.is_hidden()  # folded on screen
        page.emulate_media(media="print")
        assert all(w > 0 and h > 0 for w, h in visible_size(page, "img"))
        assert page.locator("details pre").first.is_visible()  # unfolded on paper
        assert not page.is_visible("nav")
        assert problems == []


def test_the_screenshot_script(written, tmp_path):
    _, out = written
    spec = importlib.util.spec_from_file_location(
        "report_screenshot", ROOT / "scripts" / "report_screenshot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = tmp_path / "shots" / "report.png"
    assert module.main([str(out.parent), "--out", str(png)]) == 0
    data = png.read_bytes()
    assert data.startswith(report.PNG_SIGNATURE)
    # a full-page shot is taller than the 900 pixel window
    assert int.from_bytes(data[20:24], "big") > 900
    assert module.main([str(tmp_path / "missing")]) == 2

"""Save a full-page screenshot of a results folder's report.html, as headless Chromium shows it.

    python scripts/report_screenshot.py RESULTS_FOLDER [--out PNG] [--width PIXELS]

The default output is docs/images/report.png in this repository, the picture the README shows.
The browser is the same one the page tests use (tests/browser.py), with the same flags; any
failed or outside request, or console error, seen while the page was open is printed and makes
the exit status 1 (the screenshot is still saved), so a page the tests would reject does not go
into the README unnoticed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "images" / "report.png"


def _open_page():
    # tests/browser.py holds the one Chromium launch (flags, request watch); import it from the
    # repository root so the script works from any working directory.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.browser import open_page

    return open_page


def screenshot(folder: Path, out: Path, width: int = 1280) -> list[str]:
    """Write the screenshot of ``folder/report.html`` to ``out``; return the problems seen."""
    page_file = (folder / "report.html").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _open_page()(page_file.as_uri(), width=width) as (page, problems):
        page.screenshot(path=str(out), full_page=True)
        return list(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a results folder holding report.html")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"PNG (default {DEFAULT_OUT})"
    )
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    args = parser.parse_args(argv)
    if not (args.folder / "report.html").is_file():
        print(f"no report.html in {args.folder}", file=sys.stderr)
        return 2
    problems = screenshot(args.folder, args.out, args.width)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

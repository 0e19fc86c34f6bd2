"""Screenshot of the dashboard for the README, and how long one step takes to reach the page.

Starts ``cxsim dashboard`` on the shipped scenarios (10,000 people each) on a free local port,
runs the replications once, steps the models, saves ``docs/images/dashboard.png``, and prints
the time from a click on Step until the headline shows the next step and the charts image
has been replaced, over several clicks (the network image is replaced only when a dot in it
changed, so it is not waited for).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.browser

from cxsim.dashboard.server import start, wait_until_up  # noqa: E402
from tests.browser import open_page  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "dashboard.png"))
    parser.add_argument("--steps", type=int, default=26, help="steps before the screenshot")
    parser.add_argument("--timed", type=int, default=10, help="step clicks to time")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = [str(ROOT / "scenarios" / "reactive.yaml"), str(ROOT / "scenarios" / "proactive.yaml")]
    process = start(paths, "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/"
        if not wait_until_up(url, process):
            print("the dashboard server did not start", file=sys.stderr)
            return 1
        with open_page(url, 1500, 2150) as (page, problems):
            page.wait_for_selector(".cxsim-headline", timeout=120_000)
            step = page.get_by_role("button", name="Step")
            times = []
            for i in range(1, args.steps + 1):
                before = page.eval_on_selector("img.cxsim-charts", "e => e.src")
                started = time.perf_counter()
                step.click()
                # Updated: the headline shows the new step and the charts image was replaced.
                page.wait_for_function(
                    "([n, before]) => { const h = document.querySelector('.cxsim-headline');"
                    " const img = document.querySelector('img.cxsim-charts');"
                    " return h !== null && img !== null && h.innerText.includes(`week ${n} of`)"
                    " && img.src !== before; }",
                    arg=[i, before],
                    timeout=60_000,
                )
                if i <= args.timed:
                    times.append(time.perf_counter() - started)
            page.get_by_role("button", name="Run 10 replications").click()
            page.wait_for_selector(".cxsim-replications", timeout=300_000)
            page.wait_for_timeout(1000)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            print(f"saved {args.out}")
            print(
                f"click Step -> page shows the next step, {len(times)} clicks: median "
                f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
            )
            print(f"problems seen by the browser: {problems or 'none'}")
    finally:
        process.terminate()
        process.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The README's screenshot of ``guardcli tui`` (docs/tui.svg), taken by Textual itself.

Drives the real app headless with Pilot: two classifications through the given bundle (the
first two lands in the history, the second is on screen), then saves an SVG. Timings are
hidden and cursors still, so the same bundle gives the same picture. The README image uses
the test fixture model (testkit/fixture.py), whose traces are real GuardReasoner output for
the fixture pairs:

    python -m testkit.fixture /tmp/fixture                 # or reuse the tests' cached bundle
    python scripts/tui_screenshot.py --model /tmp/fixture/bundle --output docs/tui.svg
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from guardcli.bundles.resolve import Resolved, check_bundle, open_guard
from guardcli.core.guard import GuardOptions
from guardcli.tui.app import GuardApp
from guardcli.tui.widgets import ModelInfo
from testkit.pairs import FIXTURE_PAIRS

SHOWN = ("fake-id", "poison-dog")  # the last one is what the screenshot shows


async def shoot(app: GuardApp, output: Path, size: tuple[int, int]) -> None:
    pairs = {pair.id: pair for pair in FIXTURE_PAIRS}
    async with app.run_test(size=size) as pilot:
        for ident in SHOWN:
            pair = pairs[ident]
            await pilot.press("ctrl+n")
            app.query_one("#prompt").text = pair.prompt
            app.query_one("#response").text = pair.response or ""
            await pilot.press("f5")
            while app.busy:
                await pilot.pause(0.05)
            await pilot.pause()
        app.query_one("#prompt").focus()
        await pilot.pause()
        app.save_screenshot(filename=output.name, path=str(output.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle directory")
    parser.add_argument("--output", type=Path, default=Path("docs/tui.svg"))
    parser.add_argument("--size", default="120x40", help="terminal columns x rows")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.split("x"))
    manifest = check_bundle(args.model)
    guard, _manifest, device = open_guard(
        Resolved(args.model, "--model"),
        device="cpu",
        options=GuardOptions(max_new_tokens=256, batch_size=4),
    )
    info = ModelInfo(manifest.name, manifest.precision, device)
    app = GuardApp(guard, model=info, timings=False, blink=False)
    app.title = "guardcli tui"
    asyncio.run(shoot(app, args.output, (columns, rows)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

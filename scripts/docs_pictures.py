"""Make the pictures in docs/images/ (run by hand after a benchmark run changes them).

    python scripts/docs_pictures.py charts     # SVG charts from docs/performance.md's tables
    python scripts/docs_pictures.py cli        # the live bar of a run, as SVG
    python scripts/docs_pictures.py dashboard  # the dashboard during a realistic run, PNG

The charts read the tables in docs/performance.md (so a chart cannot disagree with the
figures beside it). The other two come from real runs against the simulator: the CLI's
own progress display fed by a real run; the dashboard served by ``asyncgen dashboard``
over a SQLite queue that two ``asyncgen worker`` processes are working through, taken
in Debian's chromium by Playwright.
"""

from __future__ import annotations

import html
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
PERFORMANCE = ROOT / "docs" / "performance.md"
FONT = "font-family='system-ui, -apple-system, Segoe UI, sans-serif'"
ACCENT, PEER, MUTED = "#3f51b5", "#b0b7c3", "#5f6b7a"


def table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table whose header starts as given."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def number(cell: str) -> float:
    return float(re.search(r"[\d,]+(?:\.\d+)?", cell).group().replace(",", ""))  # type: ignore[union-attr]


def bars_svg(
    title: str, subtitle: str, rows: list[tuple[str, float, str, bool]], unit: str, digits: int
) -> str:
    """Horizontal bars: (label, value, note, ours) per row."""
    width, left, bar_room, row_h, top = 880, 330, 300, 34, 70
    height = top + row_h * len(rows) + 30
    most = max(value for _, value, _, _ in rows) or 1.0
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' {FONT}>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        f"<text x='20' y='30' font-size='18' font-weight='600'>{html.escape(title)}</text>",
        f"<text x='20' y='52' font-size='13' fill='{MUTED}'>{html.escape(subtitle)}</text>",
    ]
    for i, (label, value, note, ours) in enumerate(rows):
        y = top + i * row_h
        length = max(2.0, bar_room * value / most)
        colour = ACCENT if ours else PEER
        parts += [
            f"<text x='{left - 10}' y='{y + 21}' font-size='13' text-anchor='end'>"
            f"{html.escape(label)}</text>",
            f"<rect x='{left}' y='{y + 6}' width='{length:.1f}' height='22' rx='3' "
            f"fill='{colour}'/>",
            f"<text x='{left + length + 8:.1f}' y='{y + 21}' font-size='13'>"
            f"{value:,.{digits}f}{unit}  <tspan fill='{MUTED}'>{html.escape(note)}</tspan></text>",
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def charts() -> None:
    text = PERFORMANCE.read_text()
    rows = table(text, "| contender | bucket 0s |")
    column = 4  # "sliding 0.5s": N in any second, as OpenAI enforces per-minute limits
    shown = []
    for row in rows:
        makespan, share, lost = (part.strip() for part in row[column].split(","))
        label = re.sub(r"`", "", row[0]).replace(", one SharedRateLimiter", ", shared limiter")
        peer = label.startswith(("LiteLLM", "openai", "bounded"))
        shown.append((label, number(share), f"{makespan} ideal, {lost}", not peer))
    IMAGES.mkdir(parents=True, exist_ok=True)
    (IMAGES / "ratelimit.svg").write_text(
        bars_svg(
            "Requests refused (429) at a provider's limit",
            "200 jobs, 600 requests a minute in any 1-second window, 0.5 s latency "
            "(bench_ratelimit, one run)",
            shown,
            " %",
            1,
        )
    )
    rows = table(text, "| worker processes | asyncgen, `submit` per job |")
    shown = []
    for row in rows:
        workers = f"{row[0]} worker process" + ("es" if row[0] != "1" else "")
        shown += [
            (f"asyncgen, {workers}", number(row[1]), "submit per job", True),
            (f"asyncgen, {workers}", number(row[2]), "submit_many", True),
            (f"taskiq-redis, {workers}", number(row[3]), "", False),
            (f"Dramatiq, {workers}", number(row[4]), "", False),
        ]
    (IMAGES / "queue.svg").write_text(
        bars_svg(
            "Background jobs through one Redis",
            "5,000 no-op jobs submitted, run and read back (bench_redis, one run, 2 cores)",
            shown,
            " jobs/s",
            0,
        )
    )
    print("wrote", IMAGES / "ratelimit.svg", IMAGES / "queue.svg")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli() -> None:
    """``asyncgen run`` on a pseudo-terminal (``script``) against ``asyncgen sim`` with
    latency, a limit and 3 % 503s; two frames of its screen as SVG: mid-run, and the end."""
    import json
    import os
    import subprocess
    import tempfile
    import time

    from rich.console import Console
    from rich.text import Text

    port = free_port()
    profile = {
        "latency": 0.6,
        "latency_spread": 0.4,
        "rpm": 3000,
        "limiter": "sliding",
        "faults": [{"kind": "status", "status": 503, "rate": 0.03}],
    }
    config = Path(tempfile.mkdtemp()) / "sim.json"
    config.write_text(json.dumps({"default": profile}))
    sim = subprocess.Popen(
        [sys.executable, "-m", "asyncgen", "sim", "--port", str(port), "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    models = [
        "openai/gpt-4o-mini",
        "anthropic/claude-3.5-haiku",
        "deepseek/deepseek-chat",
        "meta-llama/llama-3.1-8b-instruct",
    ]
    command = "asyncgen run jobs.jsonl -o results.jsonl --base-url $URL --concurrency auto"
    try:
        time.sleep(2)
        with tempfile.TemporaryDirectory() as folder:
            with open(f"{folder}/jobs.jsonl", "w") as jobs:
                for i in range(1500):
                    line = {"id": i, "model": models[i % 4], "prompt": f"Summarise report {i}"}
                    jobs.write(json.dumps(line) + "\n")
            path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
            env = {
                **os.environ,
                "PATH": path,
                "URL": f"http://127.0.0.1:{port}/v1",
                "COLUMNS": "96",
                "ASYNCGEN_API_KEY": "sk-sim",
            }
            subprocess.run(
                ["script", "-q", "-c", command, f"{folder}/screen"],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                check=True,
                timeout=600,
            )
            raw = Path(f"{folder}/screen").read_bytes().decode(errors="replace")
    finally:
        sim.terminate()
    body = raw.split("\n", 1)[1].rsplit("\nScript done", 1)[0].replace("\x1b[?25l", "")
    frames = body.replace("\x1b[?25h", "").split("\r\x1b[2K")
    bars = [f for f in frames if "/1500" in f]
    middle = bars[len(bars) // 2]
    final, summary = frames[-1].split("\r\n", 1)
    for name, screen in (("cli-progress.svg", middle), ("cli-run.svg", f"{final}\n{summary}")):
        console = Console(record=True, width=96, force_terminal=True, file=io.StringIO())
        console.print(f"$ {command}", style="bold", highlight=False)
        console.print(Text.from_ansi(screen.replace("\r", "")))
        (IMAGES / name).write_text(console.export_svg(title="asyncgen run"))
    print("wrote", IMAGES / "cli-progress.svg", IMAGES / "cli-run.svg")


def dashboard() -> None:
    """Two ``asyncgen worker`` processes on a SQLite queue of 3,000 generation jobs, against
    a simulator with 0.5-2.5 s latencies, a per-model limit and 2 % of answers a
    permanent 400; the overview page watched for 50 s (its charts are drawn live), from
    Debian's chromium."""
    import asyncio
    import json
    import os
    import subprocess
    import tempfile
    import time

    from playwright.sync_api import sync_playwright

    import asyncgen

    sim_port, page_port = free_port(), free_port()
    profile = {
        "latency": 1.5,
        "latency_spread": 1.0,
        "rpm": 1200,
        "limiter": "sliding",
        "faults": [
            {"kind": "status", "status": 400, "rate": 0.02, "message": "context length exceeded"},
            {"kind": "status", "status": 503, "rate": 0.03},
        ],
    }
    folder = Path(tempfile.mkdtemp())
    (folder / "sim.json").write_text(json.dumps({"default": profile}))
    models = [
        "openai/gpt-4o-mini",
        "anthropic/claude-3.5-haiku",
        "deepseek/deepseek-chat",
        "google/gemini-flash-1.5",
        "meta-llama/llama-3.1-8b-instruct",
    ]

    async def submit() -> None:
        queue = asyncgen.open_queue("sqlite:///jobs.db")
        await queue.submit_many(
            asyncgen.GenerationJob(model=models[i % 5], prompt=f"Summarise report {i}")
            for i in range(3000)
        )
        await queue.aclose()

    base = [sys.executable, "-m", "asyncgen"]
    env = {**os.environ, "ASYNCGEN_API_KEY": "sk-sim"}

    def start(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*base, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            env=env,
        )

    children = [start("sim", "--port", str(sim_port), "--config", "sim.json")]
    try:
        time.sleep(2)
        os.chdir(folder)
        asyncio.run(submit())
        url = f"http://127.0.0.1:{sim_port}/v1"
        for _ in range(2):
            worker = [
                "worker",
                "sqlite:///jobs.db",
                "--base-url",
                url,
                "--concurrency",
                "24",
            ]
            children.append(start(*worker))
        children.append(start("dashboard", "sqlite:///jobs.db", "--port", str(page_port)))
        time.sleep(3)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1180})
            page.goto(f"http://127.0.0.1:{page_port}/")
            page.wait_for_timeout(50_000)  # the live charts fill as the page watches
            page.screenshot(path=str(IMAGES / "dashboard-overview.png"))
            browser.close()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
    print("wrote", IMAGES / "dashboard-overview.png")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "charts"
    {"charts": charts, "cli": cli, "dashboard": dashboard}[what]()

"""Headless Chromium over the DevTools protocol (aiohttp's websocket client): a page at a given
viewport width, its console errors, its layout measured by the browser, and a screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.chromium import FLAGS, chromium

# Everything reaching past the width asked for, and the text of every element with an id, as the
# browser laid them out. (On a phone-sized viewport a too-wide page widens the layout viewport itself,
# so the width asked for is the measure, not innerWidth.)
_MEASURE = """((width) => {
  const wide = [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > width + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (typeof el.className === 'string' && el.className ? '.' + el.className : ''));
  const text = {};
  for (const el of document.querySelectorAll('[id]')) text[el.id] = el.textContent.trim();
  return {width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 20),
          text};
})"""


@dataclass
class Rendering:
    width: int
    scroll_width: int
    too_wide: list[str]
    text_by_id: dict[str, str]
    errors: list[str] = field(default_factory=list)
    probed: Any = None  # what the caller's `probe` expression returned


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.ws:
            data = message.json()
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Page.loadEventFired":
                self.loaded.set()
            elif "method" in data:
                self.events.append(data)

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_json(message)
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def errors(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(str(params["exceptionDetails"].get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f'{params["entry"].get("text")} {params["entry"].get("url", "")}')
        return out


async def _render(port: int, path: str, url: str, width: int, height: int, shot: Path | None,
                  probe: str | None) -> Rendering:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}{path}",
                                                              max_msg_size=64 * 1024 * 1024) as ws:
        cdp = _Session(ws)
        pump = asyncio.create_task(cdp.pump())
        try:
            target = (await cdp.call("Target.createTarget", url="about:blank"))["targetId"]
            session = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
                await cdp.call(domain, session)
            await cdp.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                           deviceScaleFactor=1, mobile=width < 600)
            await cdp.call("Page.navigate", session, url=url)
            await asyncio.wait_for(cdp.loaded.wait(), 30)
            measured = (await cdp.call("Runtime.evaluate", session, expression=f"{_MEASURE}({width})",
                                       returnByValue=True))["result"]["value"]
            probed = None if probe is None else (await cdp.call(
                "Runtime.evaluate", session, expression=probe, returnByValue=True))["result"].get("value")
            if shot is not None:
                data = (await cdp.call("Page.captureScreenshot", session, format="png",
                                       captureBeyondViewport=True))["data"]
                shot.write_bytes(base64.b64decode(data))
            return Rendering(measured["width"], measured["scrollWidth"], measured["wide"], measured["text"],
                             cdp.errors(), probed)
        finally:
            pump.cancel()


def render(url: str, width: int, height: int = 900, screenshot: Path | None = None,
           probe: str | None = None) -> Rendering:
    """Load `url` at `width` × `height` CSS pixels in a fresh headless Chromium; `probe` is a JavaScript
    expression evaluated in the loaded page (its value comes back JSON-shaped)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("Chromium did not open its DevTools port")
                time.sleep(0.05)
            port, path = active.read_text().splitlines()[:2]
            return asyncio.run(_render(int(port), path, url, width, height, screenshot, probe))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    finally:
        _remove(profile)


def _remove(directory: str) -> None:
    """Chromium's helper processes may still write into the profile a moment after it exits."""
    for _ in range(50):
        shutil.rmtree(directory, ignore_errors=True)
        if not Path(directory).exists():
            return
        time.sleep(0.1)

"""Fixtures for the web page's tests: Debian's Chromium driven headless by Selenium against a real
``mnm serve`` on the demo bundle, with a fake camera that plays a clip the tests write.

Chromium and chromedriver come from Debian (``apt-get install -y chromium chromium-driver``, run here
when they are missing and we are root); Selenium is pointed at them, so Selenium Manager never
downloads a browser or a driver. Screenshots go to an artifacts folder named at the end of the run
(``MNM_WEB_ARTIFACTS`` chooses it).
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest

from tests.debian import apt_install_missing
from tests.server.conftest import DEMO, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--window-size=1280,900")
WAIT_S = 90  # for anything the server computes: the machine running the tests may be busy
STATIC = Path(__file__).resolve().parents[2] / "runtime" / "server" / "static"
FACTORS = ("background", "pose", "shape", "texture")
_artifacts: list[Path] = []


@functools.cache
def chromium_missing() -> str | None:
    """Why Chromium cannot run here, after installing it from Debian where we can; None when it can."""
    return apt_install_missing(("chromium", "chromium-driver"), (CHROMIUM, CHROMEDRIVER))
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "chromium and chromium-driver are not installed and cannot be (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode != 0:  # a fresh container has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"apt-get install chromium chromium-driver failed: {lines[-1] if lines else result.returncode}"
    return None


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Frames (H x W x 3 RGB, even sides) as a YUV4MPEG2 clip, the format Chromium's fake camera plays."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MNM_WEB_ARTIFACTS") or tmp_path_factory.mktemp("web-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    _artifacts.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter):
    for folder in _artifacts:
        terminalreporter.write_line(f"web page screenshots: {folder}")


@pytest.fixture(scope="session")
def camera_clip(tmp_path_factory) -> Path:
    """The demo's clip of a bird turning (what ``mnm demo`` animates), upscaled, as the fake camera."""
    from mnm.cli.demo_files import _clip, _references
    from mnm.demo import demo_info
    from mnm.training.synthetic import SynthSpec, render_scene

    spec = SynthSpec.from_dict(demo_info()["data"])
    frames = [cv2.resize(f, (160, 160), interpolation=cv2.INTER_LINEAR)
              for f in _clip(spec, _references(spec, render_scene)[4])]
    return write_y4m(tmp_path_factory.mktemp("camera") / "clip.y4m", frames)


@pytest.fixture(scope="session")
def browser(camera_clip):
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--use-file-for-fake-video-capture={camera_clip}")
    profile = tempfile.mkdtemp(prefix="mnm-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with mock.patch.dict(os.environ, {"SE_OFFLINE": "true"}):  # Selenium Manager: never download
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    running = Server(DEMO).wait_ready()
    yield running
    assert running.stop() == 0, running.output()


class Page:
    """The page open in the browser, with the few moves the tests make."""

    def __init__(self, driver, url: str):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.1)
        driver.set_window_size(1280, 900)
        driver.get(url)
        self.wait.until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))

    def find(self, css: str):
        return self.driver.find_element("css selector", css)

    def text(self, css: str) -> str:
        return self.driver.execute_script("return document.querySelector(arguments[0]).textContent", css).strip()

    def upload(self, input_id: str, *paths: Path) -> None:
        """Files through the drop zone's real file input, as the chooser would give them."""
        self.find(f"#{input_id}").send_keys("\n".join(str(p) for p in paths))

    def wait_mix(self, *words: str) -> str:
        """Wait until the mix shown is the answer to inputs whose caption has ``words``; the caption."""
        def done(_):
            busy = self.find("#mix-result").get_attribute("aria-busy") == "true"
            caption = self.text("#mix-caption")
            return not busy and self.text("#mix-status").startswith("Mixed") and all(w in caption for w in words)
        self.wait.until(done, message=f"no mix with {words}: status {self.text('#mix-status')!r}, "
                                      f"error {self.text('#mix-error')!r}")
        return self.text("#mix-caption")

    def image_bytes(self, img_id: str) -> bytes:
        """The bytes of the image an <img> shows (its blob URL, fetched inside the page)."""
        encoded = self.driver.execute_async_script("""
            const [id, done] = arguments;
            fetch(document.getElementById(id).src).then((r) => r.arrayBuffer()).then((buffer) => {
              const bytes = new Uint8Array(buffer);
              let text = "";
              for (let i = 0; i < bytes.length; i += 0x8000) {
                text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
              }
              done(btoa(text));
            }).catch((error) => done("error: " + error));
        """, img_id)
        assert not encoded.startswith("error:"), encoded
        return base64.b64decode(encoded)

    def screenshot(self, path: Path, full: bool = True) -> Path:
        """A screenshot of the whole page (the window grown to its height), or of the window."""
        size = self.driver.get_window_size()
        self.driver.execute_script("window.scrollTo(0, 0)")
        if full:
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(size["width"], height + 40)
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(size["width"], size["height"])
        return path

    def script_errors(self) -> list[str]:
        """Console entries that are page faults (uncaught exceptions, refused by the content policy);
        the browser's notes on 4xx/5xx answers the tests ask for are not faults."""
        entries = self.driver.get_log("browser")
        return [e["message"] for e in entries
                if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


@pytest.fixture
def page(browser, server):
    opened = Page(browser, server.url)
    yield opened
    assert opened.script_errors() == []


@pytest.fixture(scope="session")
def birds(tmp_path_factory) -> dict[str, Path]:
    """Four reference files, one per factor (copies of demo images under their own names)."""
    folder = tmp_path_factory.mktemp("birds")
    sources = ("demo10.png", "demo40.png", "demo70.png", "demo90.png")
    return {kind: Path(shutil.copy(STATIC / "gallery" / name, folder / f"{kind}-bird.png"))
            for kind, name in zip(FACTORS, sources, strict=True)}


def mnm_mix(out: Path, *args: str) -> bytes:
    """What ``mnm mix`` writes on the demo bundle for these options (a PNG)."""
    result = subprocess.run([sys.executable, "-m", "mnm", "mix", str(DEMO), *args, "--out", str(out)],
                            capture_output=True, text=True, env={**os.environ, "MNM_NO_PROGRESS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()

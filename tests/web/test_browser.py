"""The web page in a real browser (Debian's Chromium, headless) against a real ``mnm serve``: the mix
equals ``mnm mix`` byte for byte, the grid equals ``mnm mix``'s grid, a bad upload shows the server's
message and the page goes on, an overload is retried, the webcam panel animates a fake camera, and the
page can be used by keyboard and on a phone-sized screen."""

from __future__ import annotations

import base64
import re
import time

import httpx
import pytest

from tests.server.conftest import DEMO, Server
from tests.server.test_limits import form_body, start_stalled_upload, wait_uploading
from tests.web.conftest import FACTORS, STATIC, WAIT_S, Page, mnm_mix


def test_four_uploads_make_the_mix_mnm_mix_makes(page, birds, tmp_path, artifacts):
    for kind in FACTORS:
        page.upload(f"file-{kind}", birds[kind])
    caption = page.wait_mix(*(path.name for path in birds.values()))
    assert "code mode, seed 0" in caption
    shown = page.image_bytes("mix-image")
    expected = mnm_mix(tmp_path / "mix.png", *(f"--{kind}={birds[kind]}" for kind in FACTORS))
    assert shown == expected
    assert re.fullmatch(r"Mixed in \d+(\.\d)? ms \(server \d+(\.\d)? ms\)\.", page.text("#mix-status"))
    alt = page.find("#mix-image").get_attribute("alt")
    assert all(path.name in alt for path in birds.values())
    page.screenshot(artifacts / "mix.png")


def test_a_text_file_named_png_shows_the_servers_message_and_the_next_upload_works(page, server, birds, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("these are my notes, not a picture\n")
    answer = httpx.post(server.url + "/v1/mix", files={"texture": (bad.name, bad.read_bytes(), "image/png")},
                        data={"background": "random", "pose": "random", "shape": "random"}, timeout=60)
    assert answer.status_code == 422
    message = answer.json()["error"]
    page.wait_mix("texture: random")
    page.upload("file-texture", bad)
    page.wait.until(lambda _: message in page.text("#mix-error"), message="the server's message never showed")
    assert page.find("#mix-error").is_displayed()
    assert page.find("#mix-result").get_attribute("aria-busy") == "false"

    page.upload("file-texture", birds["texture"])
    page.wait_mix(f"texture: {birds['texture'].name}")
    assert not page.find("#mix-error").is_displayed()
    expected = mnm_mix(tmp_path / "mix.png", f"--texture={birds['texture']}", "--background=random", "--pose=random",
                       "--shape=random")
    assert page.image_bytes("mix-image") == expected


def test_keyboard_picks_a_demo_image_and_moves_a_code_slider(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = page.driver

    def press(*keys):
        ActionChains(driver).send_keys(*keys).perform()
        return driver.switch_to.active_element

    for _ in range(40):  # Tab through the page to the background's drop zone
        if press(Keys.TAB).get_attribute("id") == "file-background":
            break
    else:
        pytest.fail("Tab never reached the background's drop zone")
    zone = page.find("label[for=file-background]")
    assert zone.value_of_css_property("outline-style") != "none"  # the focus shows on the zone
    assert "Background image" in driver.switch_to.active_element.accessible_name

    summary = press(Keys.TAB)  # the gallery's summary: Enter opens it
    assert summary.tag_name == "summary"
    press(Keys.ENTER)
    thumb = press(Keys.TAB)
    assert thumb.tag_name == "button" and "demo image 10" in thumb.accessible_name
    press(Keys.ENTER)
    page.wait_mix("background: demo10.png")

    slider = page.find("#code-texture")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # three requests, the last one wins
    page.wait_mix("background: demo10.png", "texture: code:3")
    assert page.find("#source-texture-code").is_selected()
    expected = mnm_mix(tmp_path / "mix.png", f"--background={STATIC / 'gallery' / 'demo10.png'}", "--pose=random",
                       "--shape=random", "--texture=code:3")
    assert page.image_bytes("mix-image") == expected


def test_files_and_demo_images_dropped_on_the_zones_are_used(page, birds, tmp_path):
    """A file dropped on the shape's zone and a demo image dragged onto the pose's zone (drop events
    with the browser's own DataTransfer) are what the mix uses."""
    page.wait_mix()
    page.driver.execute_script("""
        const [name, encoded] = arguments;
        const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
        const drop = (zone, data) => {
          for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
          }
        };
        const file = new DataTransfer();
        file.items.add(new File([bytes], name, { type: "image/png" }));
        drop(document.querySelector("label[for=file-shape]"), file);
        const demo = new DataTransfer();
        demo.setData("application/x-mnm-gallery", "demo30.png");
        drop(document.querySelector("label[for=file-pose]"), demo);
    """, birds["shape"].name, base64.b64encode(birds["shape"].read_bytes()).decode())
    page.wait_mix(f"shape: {birds['shape'].name}", "pose: demo30.png")
    assert page.find("#source-shape-image").is_selected() and page.find("#source-pose-image").is_selected()
    expected = mnm_mix(tmp_path / "mix.png", "--background=random", f"--pose={STATIC / 'gallery' / 'demo30.png'}",
                       f"--shape={birds['shape']}", "--texture=random")
    assert page.image_bytes("mix-image") == expected


def test_the_grid_builder_renders_what_mnm_mix_renders(page, birds, tmp_path, artifacts):
    page.wait_mix()
    page.upload("file-grid-a", birds["background"], birds["pose"])  # the first factor: background
    for n in ("1", "2"):  # the second factor: texture codes
        field = page.find("#grid-code-b")
        field.clear()
        field.send_keys(n)
        page.find("#grid-add-code-b").click()
    assert [li.text.splitlines()[0] for li in page.driver.find_elements("css selector", "#grid-entries-b li")] == [
        "code:1", "code:2"]
    page.find("#grid-render").click()
    page.wait.until(lambda _: page.text("#grid-status").startswith("Grid rendered"),
                    message=f"no grid: {page.text('#grid-error')!r}")
    expected = mnm_mix(tmp_path / "grid.png", f"--background={birds['background']}", f"--background={birds['pose']}",
                       "--texture=code:1,code:2", "--pose=random", "--shape=random")
    assert page.image_bytes("grid-image") == expected
    assert "background (background-bird.png" in page.find("#grid-image").get_attribute("alt")
    page.screenshot(artifacts / "grid.png")


def test_the_webcam_panel_animates_the_fake_camera(page, birds, artifacts):
    page.upload("file-webcam", birds["background"])
    page.find("#webcam-start").click()
    page.wait.until(lambda _: int(page.text("#stat-answered")) >= 8,
                    message=f"fewer than 8 animated frames in {WAIT_S} s: {page.text('#webcam-status')!r} "
                            f"{page.text('#webcam-error')!r}")
    assert re.fullmatch(r"\d+\.\d", page.text("#stat-fps")) and float(page.text("#stat-fps")) > 0
    assert re.fullmatch(r"\d+(\.\d)? ms", page.text("#stat-latency"))
    assert re.fullmatch(r"\d+(\.\d)? ms", page.text("#stat-server"))
    assert page.text("#stat-dropped") == "0"  # one frame in flight at a time: the server never had to drop one
    drawn = page.driver.execute_script("""
        const c = document.getElementById("webcam-canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
        return seen.size;""")
    assert drawn > 20, "the canvas shows no animated frame"
    page.screenshot(artifacts / "webcam.png")

    page.find("#webcam-stop").click()
    page.wait.until(lambda _: page.text("#webcam-status").startswith("Stopped"))
    counts = [int(n) for n in re.findall(r"\d+", page.text("#webcam-status"))]
    received, answered, dropped, failed = counts
    assert received == answered + dropped + failed and answered >= 8 and dropped == 0 and failed == 0
    assert page.find("#webcam-start").is_enabled() and not page.find("#webcam-stop").is_enabled()


def test_overload_shows_the_busy_message_and_the_page_retries(browser, tmp_path):
    strict = Server(DEMO, "--max-uploads", "1").wait_ready()
    stalled = None
    try:
        page = Page(browser, strict.url)
        page.wait_mix()
        stalled = start_stalled_upload(strict.url, form_body({"background": "code:1"}))
        wait_uploading(strict, 1)
        seed = page.find("#seed")
        seed.clear()
        seed.send_keys("7")
        page.wait.until(lambda _: "busy" in page.text("#mix-error"), message="no busy message")
        assert re.search(r"Trying again in \d+ s\.", page.text("#mix-error"))
        stalled.close()  # the queue frees; the page's own retry gets the mix
        caption = page.wait_mix("seed 7")
        assert not page.find("#mix-error").is_displayed()
        assert caption.endswith("code mode, seed 7")
        assert page.script_errors() == []
    finally:
        if stalled is not None:
            stalled.close()  # closing twice is harmless; a failed wait must not leave the server waiting
        assert strict.stop() == 0, strict.output()


@pytest.mark.parametrize("width, height, columns", [(390, 844, 1), (1280, 900, 2)])
def test_layout_fits_a_phone_and_a_laptop(page, artifacts, width, height, columns):
    page.driver.set_window_size(width, height)
    time.sleep(0.3)  # let the layout settle
    inner, scroll = page.driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= inner, f"the page is wider than the {width} px window ({scroll} px)"
    lefts = {page.find(f"#factor-{kind}").rect["x"] for kind in FACTORS}
    assert len(lefts) == columns
    if width < 500:
        page.screenshot(artifacts / "phone.png")


def test_controls_have_names_images_have_alt_text_and_status_is_announced(page):
    page.wait_mix()
    driver = page.driver
    driver.execute_script("for (const d of document.querySelectorAll('details')) d.open = true;")
    controls = driver.find_elements("css selector", "input, select, button, summary, a[href]")
    assert len(controls) > 60
    for element in controls:
        assert element.accessible_name.strip(), f"no accessible name: {element.get_attribute('outerHTML')[:120]}"
    for img in driver.find_elements("css selector", "img"):
        if img.is_displayed():
            assert img.get_attribute("alt").strip(), img.get_attribute("outerHTML")[:120]
    for region in ("mix", "grid", "webcam"):
        assert page.find(f"#{region}-status").get_attribute("role") == "status"
        assert page.find(f"#{region}-error").get_attribute("role") == "alert"
    assert page.find("#mix-image").get_attribute("alt").startswith("The mix:")
    assert page.find("#webcam-canvas").accessible_name

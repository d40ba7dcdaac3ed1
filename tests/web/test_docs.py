"""``/docs`` works offline: in headless Chromium, every URL the page actually loaded (its resource
timing entries) is on the server's own origin, and Swagger UI rendered the API from them."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.web.conftest import WAIT_S


def test_the_api_page_loads_nothing_from_another_origin(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/docs")
    WebDriverWait(browser, WAIT_S, poll_frequency=0.1).until(
        lambda d: d.execute_script("return document.querySelectorAll('.opblock-summary-path').length") >= 4,
        message="Swagger UI did not render the endpoints")
    loaded = browser.execute_script(
        "return performance.getEntries().filter((e) => e.name.includes('://')).map((e) => e.name)")
    own = urlsplit(server.url).netloc
    assert {urlsplit(url).netloc for url in loaded} == {own}, loaded
    paths = {urlsplit(url).path for url in loaded}
    assert {"/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= paths
    title = browser.execute_script("return document.querySelector('.info .title').textContent")
    assert title.startswith("mnm")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

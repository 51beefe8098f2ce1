"""The page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver (both installed by .ci/run). Each task's page is loaded from a running server
and used as a person would; what they would see is checked, and a screenshot of each is saved
in the test's tmp directory (and, with $RNNKIT_SCREENSHOTS=DIR, copied there). The README's come
from `RNNKIT_SCREENSHOTS=docs/serve RNNKIT_SERVE_LM=DIR RNNKIT_SERVE_TRANSLATE=DIR pytest
tests/serve/test_page.py`, where the two name trained models (a character LSTM, a translator of
English words) to show on those pages in place of the tiny ones."""

import contextlib
import os
import shutil
from pathlib import Path

import pytest

import rnnkit
from rnnkit.serve.lm import FEATURES

from conftest import running  # tests/serve/conftest.py

pytest.importorskip("starlette", reason="rnnkit serve needs the [serve] extra: pip install -e '.[serve]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the [test] extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver: "
                                "apt-get install -y chromium chromium-driver (.ci/run installs them)")
WAIT = 120  # seconds a page may take to show a result: a bound on a wait, not a timing


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def lm_client(servers):
    """The server of the lm page's model: the tiny one, or the one $RNNKIT_SERVE_LM names."""
    with client_for("lm", servers) as client:
        yield client


@pytest.fixture(scope="module")
def translate_client(servers):
    """The server of the translate page's model: the tiny one, or the one $RNNKIT_SERVE_TRANSLATE names."""
    with client_for("translate", servers) as client:
        yield client


@contextlib.contextmanager
def client_for(task: str, servers):
    directory = os.environ.get(f"RNNKIT_SERVE_{task.upper()}")
    if not directory:
        yield servers[task]
        return
    with running(rnnkit.load(directory)) as client:
        yield client


def open_page(browser, client):
    browser.get(client.url + "/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
                                       or d.find_element(By.ID, "error").is_displayed())
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text


def use(browser, client, inputs: dict, button: str, result: str):
    """Open the page, type ``inputs`` {element id: text} (replacing what is there), press ``button``
    and wait until elements matching the CSS selector ``result`` show; returns them."""
    open_page(browser, client)
    for element, text in inputs.items():
        box = browser.find_element(By.ID, element)
        box.clear()
        box.send_keys(text)
    browser.find_element(By.ID, button).click()
    return WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, result))


def screenshot(browser, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(path)) and path.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("RNNKIT_SCREENSHOTS"):
        target = Path(os.environ["RNNKIT_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / f"{name}.png")


def test_lm_page_streams_coloured_characters(browser, lm_client, tmp_path):
    use(browser, lm_client, {"prime": 'the king said "', "length": "150"}, "generate", '#output[data-done="true"]')
    spans = browser.find_elements(By.CSS_SELECTOR, "#output span.ch")
    assert len(spans) == len('the king said "') + 150
    assert "".join(s.get_attribute("textContent") for s in spans).startswith('the king said "')
    colours = {s.value_of_css_property("background-color") for s in spans}
    assert len(colours) > 5  # shades of the unit's activation (a tiny model's unit varies little: not one per character)
    assert all(s.get_attribute("title").startswith("h unit 0: ") for s in spans)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gates div")) == 4  # an LSTM's gates of the last step
    # the units panel: units for each feature; a click colours the text by one
    links = WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#units a"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#units tr")) == 5  # a header and four features
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#units tr") if r.text.startswith(FEATURES["line_position"]))
    first = row.find_elements(By.TAG_NAME, "a")[0]  # the unit that best tracks the position in the line
    layer, signal, unit = (part.strip() for part in first.text.rsplit(":", 1)[0].split("·"))  # "layer · signal · unit: r"
    first.click()
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "output").get_attribute("data-done") == "true"
                                       and d.find_elements(By.CSS_SELECTOR, "#output span.ch")[-1].get_attribute("title")
                                       .startswith(f"{signal} unit {unit}: "))
    assert browser.find_element(By.ID, "layer").get_attribute("value") == layer
    screenshot(browser, tmp_path, "lm")


def test_translate_page_draws_the_attention_heatmap(browser, translate_client, tmp_path):
    cells = use(browser, translate_client, {"source": "the dog sees a red cat"}, "translate-button", "#heatmap rect.attention")
    served = translate_client.post("/api/translate", {"texts": ["the dog sees a red cat"], "beam": 1})[1]["results"][0]
    assert browser.find_element(By.ID, "translation").text == served["text"]
    assert len(cells) == len(served["tokens"]) * len(served["source_tokens"])  # a row per output token, a column per source one
    shades = [float(c.get_attribute("fill").split(",")[-1].rstrip(")")) for c in cells]
    assert shades == pytest.approx([w for row in served["attention"] for w in row])
    screenshot(browser, tmp_path, "translate")


def test_classify_and_tag_pages_show_probabilities_and_tags(browser, servers, tmp_path):
    bars = use(browser, servers["classify"], {"classify-input": "the film was great\nawful plot"}, "classify-button",
               "#classify-results .bar")
    assert len(bars) == 4  # two labels for each text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#classify-results table")) == 2
    shaded = browser.find_elements(By.CSS_SELECTOR, "#classify-results .weighted")
    assert [t.text for t in shaded] == ["the", "film", "was", "great", "awful", "plot"]
    screenshot(browser, tmp_path, "classify")

    tokens = use(browser, servers["tag"], {"tag-input": "alice smith went to paris"}, "tag-button", "#tag-results .token")
    assert [t.text.split("\n")[0] for t in tokens] == ["alice", "smith", "went", "to", "paris"]
    screenshot(browser, tmp_path, "tag")


def test_forecast_and_detect_pages_draw_their_charts(browser, servers, tmp_path):
    open_page(browser, servers["forecast"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#forecast-charts polygon.band")) == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#forecast-charts polyline.history")) == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#forecast-charts polyline.forecast")) == 1
    screenshot(browser, tmp_path, "forecast")

    open_page(browser, servers["detect"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#detect-charts line.threshold")) == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#detect-charts polyline.scores")) == 1
    screenshot(browser, tmp_path, "detect")


def test_an_error_shows_on_the_page(browser, lm_client):
    use(browser, lm_client, {"prime": "the ☃"}, "generate", "#error")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text.startswith("prime: characters not in the model's vocabulary")

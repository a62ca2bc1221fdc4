"""The drawing page in a real browser: Debian's chromium, headless, driven by Playwright.

A person's mouse strokes draw a 7 on the pad; the page must show what the server computed for the
canvas PNG through `digits predict`'s preparation (service.client.images), the label, the model
version and the 28x28 input. With real MNIST (MNIST_DIR) the model is trained on it in a fixture
and the page must read the drawn 7 as 7. A dropped PNG and a finger tap on a phone-sized screen
are answered too. The screenshot is kept in test-output/ (a CI artefact; docs/draw.png is one).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import Registry
from service.client.images import load_image
from tests.helpers.servers import Running, free_port, start
from tests.helpers.toy_models import publish

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a downloaded build
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-dev-shm-usage",
]  # CI containers may have a small /dev/shm
MNIST_DIR = os.environ.get("MNIST_DIR")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
# A 7 in pad coordinates (the pad is 280 x 280): the top bar, then the long diagonal.
SEVEN = [(70, 60), (210, 60), (120, 230)]

if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _train_on_mnist(registry: Registry) -> None:
    """One epoch of the real model on real MNIST: enough to read a clearly drawn 7."""
    from core import MLP, TrainConfig, fit, to_features
    from core.idx import decode_images, decode_labels

    root = Path(MNIST_DIR or ".")
    x = to_features(decode_images((root / "train-images-idx3-ubyte.gz").read_bytes()))
    y = decode_labels((root / "train-labels-idx1-ubyte.gz").read_bytes())
    model = MLP(seed=0)
    fit(model, x, y, TrainConfig(epochs=1))
    version = registry.publish("digits", dict(model.params), {"loss": "cross_entropy"}).version
    registry.set_alias("digits", "production", version)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    registry = Registry(tmp_path_factory.mktemp("page") / "models")
    if MNIST_DIR:
        _train_on_mnist(registry)
    else:  # a toy model: the page must still show a label and the version
        publish(registry, seed=1)
    running = start(registry, http_port=free_port())
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, served: Running) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 800, "height": 560})
    page = context.new_page()
    page.goto(served.http_url + "/")
    yield page
    context.close()


def _draw(page: Any, points: list[tuple[int, int]]) -> dict[str, Any]:
    """Mouse strokes through `points` (pad coordinates); the answer to the newest picture sent.

    The page asks while the stroke is drawn (debounced) and once when it ends; answers to older
    pictures are dropped, so the newest picture's answer is the one the page ends up showing.
    """
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / 280
    sent: list[Any] = []

    def record(request: Any) -> None:
        if request.url.endswith("/v1/draw"):
            sent.append(request)

    page.on("request", record)
    page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=12)
    with page.expect_request(lambda r: r.url.endswith("/v1/draw")):
        page.mouse.up()  # the stroke's end always sends the whole drawing
    # A debounced request from the last moves may still be encoding its PNG (toBlob is async and
    # slow on a loaded machine) and go out after the stroke's own: wait until requests stop.
    for _ in range(40):
        count = len(sent)
        page.wait_for_timeout(250)
        if len(sent) == count:
            break
    page.remove_listener("request", record)
    # The page shows the answer to the newest picture (numbered when it was taken), which need
    # not be the last request to go out.
    newest = max(sent, key=lambda request: int(request.headers.get("x-draw-sequence", "0")))
    response = newest.response()  # waits for it
    assert response is not None and response.ok, response
    return dict(response.json())


def _shown(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            label: document.getElementById('label').textContent,
            version: document.getElementById('version').textContent,
            bars: [...document.querySelectorAll('#bars .pct')].map(e => e.textContent),
            inputInk: Array.from(document.getElementById('input').getContext('2d')
                .getImageData(0, 0, 28, 28).data).reduce((a, b) => a + b, 0),
        })"""
    )


def test_a_drawn_seven_is_read_as_seven(page: Any, served: Running, tmp_path: Path) -> None:
    answer = _draw(page, SEVEN)
    page.wait_for_function(f"document.getElementById('label').textContent === '{answer['label']}'")
    shown = _shown(page)
    assert shown["version"] == "model digits v1"
    assert shown["inputInk"] > 0  # the 28x28 input the model received is drawn
    assert len(shown["bars"]) == 10 and all(bar.endswith("%") for bar in shown["bars"])
    # The same picture as a PNG file through `digits predict`'s preparation and digits.v1.
    png = tmp_path / "drawn.png"
    data_url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    png.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
    digit = load_image(png)
    np.testing.assert_array_equal(np.asarray(answer["input"], dtype=np.uint8), digit)
    expected = served.client.predict(digit[np.newaxis]).probabilities[0]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-6)
    assert shown["label"] == str(int(expected.argmax()))
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "draw.png"))
    if not MNIST_DIR:
        pytest.skip("MNIST_DIR is not set: the toy model cannot read a 7 (label and version shown)")
    assert shown["label"] == "7", answer["probabilities"]


def test_a_dropped_png_is_answered_and_clear_resets(
    page: Any, served: Running, tmp_path: Path
) -> None:
    from PIL import Image, ImageDraw

    picture = Image.new("L", (200, 200), 255)  # a black 1 on white paper, as a scanned digit
    ImageDraw.Draw(picture).line([(100, 30), (100, 170)], fill=0, width=16)
    png = tmp_path / "one.png"
    picture.save(png)
    data = list(png.read_bytes())
    transfer = page.evaluate_handle(
        """(data) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(data)], 'one.png', {type: 'image/png'}));
            return transfer;
        }""",
        data,
    )
    with page.expect_response(lambda r: r.url.endswith("/v1/draw")) as dropped:
        page.dispatch_event("#canvas", "drop", {"dataTransfer": transfer})
    answer = dropped.value.json()
    expected = served.client.predict(load_image(png)[np.newaxis]).probabilities[0]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-6)
    page.wait_for_function(f"document.getElementById('label').textContent === '{answer['label']}'")
    page.click("#clear")
    assert _shown(page)["label"] == "?" and _shown(page)["version"] == ""


def test_a_blank_pad_is_explained_not_answered(page: Any) -> None:
    with page.expect_response(lambda r: r.url.endswith("/v1/draw")) as blank:
        page.evaluate(
            """() => document.getElementById('canvas').toBlob(blob => {
                const file = new File([blob], 'blank.png', {type: 'image/png'});
                const input = document.getElementById('file');
                const transfer = new DataTransfer();
                transfer.items.add(file);
                input.files = transfer.files;
                input.dispatchEvent(new Event('change'));
            })"""
        )
    assert blank.value.status == 400
    page.wait_for_function("document.getElementById('status').textContent.includes('blank')")
    assert _shown(page)["label"] == "?"


def test_a_finger_draws_on_a_phone_screen(browser: Any, served: Running) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
        device_scale_factor=2,
    )  # fmt: skip
    page = context.new_page()
    page.goto(served.http_url + "/")
    box = page.locator("#canvas").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # the pad fits the screen
    touch_action = page.eval_on_selector("#canvas", "e => getComputedStyle(e).touchAction")
    assert touch_action == "none"  # a finger on the pad draws instead of scrolling
    with page.expect_response(lambda r: r.url.endswith("/v1/draw") and r.ok):
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.getElementById('label').textContent !== '?'")
    assert _shown(page)["version"] == "model digits v1"
    context.close()

"""Pictures are read the way a person sees them: every mode and bit depth, alpha, orientation,
uneven light. Every picture is built here with Pillow; each is compared with the same digit
drawn plainly (8-bit, black on white), after the MNIST-style preparation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from service.client.images import load_image, prepare_files

SIZE = (120, 160)  # portrait, so a wrong orientation changes the digit's shape


def _seven(ink: int = 255, paper: int = 0, mode: str = "L") -> Image.Image:
    """A "7": a top bar and a diagonal, asymmetric so rotations and flips show."""
    picture = Image.new(mode, SIZE, paper)
    pen = ImageDraw.Draw(picture)
    pen.line((25, 30, 95, 30), fill=ink, width=12)
    pen.line((95, 30, 50, 135), fill=ink, width=12)
    return picture


def _stroke_mask() -> np.ndarray:
    return np.asarray(_seven(), dtype=np.float32) / 255.0  # 1 on the stroke, 0 elsewhere


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = tmp_path_factory.mktemp("reference") / "seven.png"
    _seven(ink=0, paper=255).save(path)
    return load_image(path).astype(np.float32)


def _similarity(digit: np.ndarray, reference: np.ndarray) -> float:
    return float(np.corrcoef(digit.astype(np.float32).ravel(), reference.ravel())[0, 1])


def _from_mask(mode: str, ink: float, paper: float) -> Image.Image:
    """The "7" in a wide mode (I;16, I, F) with these ink and paper values."""
    values = paper + (ink - paper) * _stroke_mask()
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    return Image.fromarray(values.astype(dtype), mode=mode if mode != "I;16" else None)


CASES = {
    "1": lambda: _seven(0, 255).convert("1"),
    "L": lambda: _seven(0, 255),
    "LA": lambda: _seven(0, 255).convert("LA"),
    "P": lambda: _seven(0, 255).convert("RGB").convert("P"),
    "RGB": lambda: _seven(0, 255).convert("RGB"),
    "RGB blue ink": lambda: Image.merge(
        "RGB", [_seven(30, 250), _seven(60, 250), _seven(200, 250)]
    ),
    "RGBA": lambda: _seven(0, 255).convert("RGBA"),
    "CMYK": lambda: _seven(0, 255).convert("RGB").convert("CMYK"),
    # The field case: 16-bit grayscale, ink 8000 on paper 56000 (8-bit clamping made it blank).
    "I;16": lambda: _from_mask("I;16", 8000, 56000),
    "I": lambda: _from_mask("I", 500, 60000),
    "F": lambda: _from_mask("F", 0.1, 0.9),
}
SUFFIX = {"CMYK": ".tif", "I": ".tif", "F": ".tif"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mode_and_bit_depth_gives_the_same_digit(tmp_path: Path, reference, case: str):
    picture = CASES[case]()
    path = tmp_path / f"seven{SUFFIX.get(case, '.png')}"
    picture.save(path)
    with Image.open(path) as saved:  # the file really has the mode under test
        assert saved.mode == picture.mode or (case == "I;16" and saved.mode.startswith("I;16"))
    assert _similarity(load_image(path), reference) > 0.97


@pytest.mark.parametrize(
    ("ink", "hidden_paper"),
    [
        ((255, 255, 255), (0, 0, 0)),  # white stroke on a transparent canvas (dark-theme export)
        ((255, 255, 255), (255, 255, 255)),
        ((0, 0, 0), (0, 0, 0)),  # black stroke on transparent black
        ((0, 0, 0), (255, 255, 255)),
    ],
)
def test_strokes_on_a_transparent_canvas(tmp_path: Path, reference, ink, hidden_paper):
    picture = Image.new("RGBA", SIZE, (*hidden_paper, 0))
    stroke = Image.new("RGBA", SIZE, (*ink, 255))
    picture.paste(stroke, mask=_seven().filter(ImageFilter.SMOOTH))  # anti-aliased edges
    picture.save(tmp_path / "canvas.png")
    assert _similarity(load_image(tmp_path / "canvas.png"), reference) > 0.95


@pytest.mark.parametrize("ink", [255, 0])
def test_palette_with_a_transparent_index(tmp_path: Path, reference, ink: int):
    picture = _seven(ink=ink, paper=255 - ink).convert("P")
    paper_index = picture.getpixel((0, 0))
    picture.save(tmp_path / "palette.png", transparency=paper_index)
    with Image.open(tmp_path / "palette.png") as saved:
        assert saved.mode == "P" and "transparency" in saved.info
    assert _similarity(load_image(tmp_path / "palette.png"), reference) > 0.97


@pytest.mark.parametrize(("orientation", "stored"), [(3, Image.Transpose.ROTATE_180),
                                                     (6, Image.Transpose.ROTATE_90),
                                                     (8, Image.Transpose.ROTATE_270)])  # fmt: skip
def test_exif_orientation_is_applied(tmp_path: Path, reference, orientation: int, stored):
    """A camera stores the sensor's pixels and says how to turn them (EXIF tag 0x0112)."""
    sideways = _seven(0, 255).transpose(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    sideways.save(tmp_path / "tagged.png", exif=exif)
    sideways.save(tmp_path / "untagged.png")
    assert _similarity(load_image(tmp_path / "tagged.png"), reference) > 0.97
    assert _similarity(load_image(tmp_path / "untagged.png"), reference) < 0.8


def _photo(path: Path, light: np.ndarray, seed: int = 0) -> None:
    """Dark ink (reflecting 30% of the light) on paper lit by ``light``, with sensor noise."""
    mask = _stroke_mask()
    rng = np.random.default_rng(seed)
    scene = light * (1.0 - 0.7 * mask) + rng.normal(0.0, 3.0, size=mask.shape)
    gray = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
    Image.merge("RGB", [gray, gray, gray.point(lambda v: int(v * 0.9))]).save(path, quality=90)


def test_photo_under_a_light_gradient(tmp_path: Path, reference):
    height, width = SIZE[1], SIZE[0]
    x = np.linspace(0.0, 1.0, width)[np.newaxis, :].repeat(height, axis=0)
    _photo(tmp_path / "gradient.jpg", 240.0 - 160.0 * x)  # a lamp on the left
    digit = load_image(tmp_path / "gradient.jpg")
    assert _similarity(digit, reference) > 0.9
    assert digit[:, :3].max() < 40 and digit[:, -3:].max() < 40  # no false ink at the sides


def test_photo_with_a_shadow_and_vignetting(tmp_path: Path, reference):
    height, width = SIZE[1], SIZE[0]
    y, x = np.mgrid[0:height, 0:width]
    radius = np.hypot((x - width / 2) / width, (y - height / 2) / height)
    light = 230.0 * (1.0 - 0.8 * radius**2)
    shadow = 1.0 / (1.0 + np.exp((x - width / 3) / 4.0))  # a hand's soft shadow on the left
    light *= 1.0 - 0.45 * shadow
    _photo(tmp_path / "shadow.jpg", light, seed=1)
    assert _similarity(load_image(tmp_path / "shadow.jpg"), reference) > 0.85


def test_a_batch_reports_each_files_own_result(tmp_path: Path, reference):
    _seven(0, 255).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a picture")
    Image.new("L", SIZE, 250).save(tmp_path / "c.png")
    _seven(255, 0).save(tmp_path / "d.png")
    files = [tmp_path / name for name in ("a.png", "b.png", "missing.png", "c.png", "d.png")]
    prepared = prepare_files(files)
    assert [item.name for item in prepared] == [str(f) for f in files]
    assert [item.error is None for item in prepared] == [True, False, False, False, True]
    assert "b.png: not a picture (not PNG, JPEG" in str(prepared[1].error)
    assert "missing.png: cannot read file" in str(prepared[2].error)
    assert "c.png: no digit found: the image is blank" in str(prepared[3].error)
    assert "invert" not in str(prepared[3].error)  # no flag can help a blank picture
    for item in (prepared[0], prepared[4]):
        assert item.image is not None and _similarity(item.image, reference) > 0.97


def test_photo_of_a_sheet_on_a_dark_table(tmp_path: Path, reference):
    """The paper fills most of the frame; a strip of dark table shows around it. The border is
    dark, yet the ink is what is darker than the paper, and the table is not part of the digit."""
    height, width = 260, 240
    scene = np.full((height, width), 35.0)
    scene[12:248, 14:226] = 215.0
    mask = np.zeros((height, width))
    mask[50:210, 60:180] = _stroke_mask()
    scene *= 1.0 - 0.7 * mask
    scene *= 1.0 - 0.4 * np.linspace(0.0, 1.0, width)[np.newaxis, :]  # light from the left
    scene += np.random.default_rng(2).normal(0.0, 3.0, size=scene.shape)
    Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)).save(
        tmp_path / "sheet.jpg", quality=90
    )
    assert _similarity(load_image(tmp_path / "sheet.jpg"), reference) > 0.95


def test_a_digit_that_reaches_the_edge_is_kept(tmp_path: Path):
    """Edge clutter is dropped only when a digit stands apart from it: a tight crop stays whole,
    exactly as the same crop with a paper margin around it."""
    tight = _seven(0, 255).crop((19, 24, 101, 141))  # the stroke touches every side but one
    tight.save(tmp_path / "tight.png")
    margin = Image.new("L", (tight.width + 40, tight.height + 40), 255)
    margin.paste(tight, (20, 20))
    margin.save(tmp_path / "margin.png")
    digit = load_image(tmp_path / "tight.png")
    assert _similarity(digit, load_image(tmp_path / "margin.png").astype(np.float32)) > 0.99


def _sheet_on_a_table(margin: int, table: float, light_slope: float, seed: int) -> Image.Image:
    """The field case: a 280x280 white sheet with a dark "7" (ink reflecting 30%) pasted on a
    dark table ``margin`` px wide all round, lit from the left, with sensor noise."""
    sheet = np.asarray(_seven(0, 255).resize((280, 280 * SIZE[1] // SIZE[0])), np.float32) / 255.0
    height, width = sheet.shape[0] + 2 * margin, sheet.shape[1] + 2 * margin
    scene = np.full((height, width), table)
    scene[margin:-margin, margin:-margin] = 225.0 * (0.3 + 0.7 * sheet)
    scene *= 1.0 - light_slope * np.linspace(0.0, 1.0, width)[np.newaxis, :]
    scene += np.random.default_rng(seed).normal(0.0, 3.0, size=scene.shape)
    return Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("margin", [30, 60, 100, 160])
@pytest.mark.parametrize("table", [10.0, 30.0, 60.0, 80.0])
def test_a_sheet_on_a_wide_dark_table(tmp_path: Path, reference, margin: int, table: float):
    """With a wide table the typical pixel is the table: the sheet must still be found as the
    paper (not read as a white digit with the strokes cut out, which gave a 2 or an 8)."""
    for slope, seed in ((0.0, margin), (0.35, margin + 1)):
        path = tmp_path / f"table-{slope}.jpg"
        _sheet_on_a_table(margin, table, slope, seed).save(path, quality=90)
        assert _similarity(load_image(path), reference) > 0.95, (margin, table, slope)


def test_light_digits_on_black_are_not_taken_for_a_sheet(tmp_path: Path):
    """The sheet is looked for only where it looks like one: a bold light "0" (an ellipse with a
    hole), a light bar and a light 8 on black are prepared as light ink, as before."""
    shapes = {
        "ring": lambda pen: pen.ellipse((20, 10, 140, 150), outline=255, width=45),
        "bar": lambda pen: pen.rectangle((60, 10, 100, 150), fill=255),
        "eight": lambda pen: (
            pen.ellipse((30, 5, 130, 80), outline=255, width=35),
            pen.ellipse((25, 70, 135, 155), outline=255, width=35),
        ),
    }
    for name, draw in shapes.items():
        picture = Image.new("L", (160, 160), 0)
        draw(ImageDraw.Draw(picture))
        picture.save(tmp_path / f"{name}.png")
        digit = load_image(tmp_path / f"{name}.png").astype(np.float32)
        explicit = load_image(tmp_path / f"{name}.png", invert=False).astype(np.float32)
        np.testing.assert_array_equal(digit, explicit, err_msg=name)

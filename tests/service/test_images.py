"""Tests of service.client.images: MNIST-style fitting of digits, inversion, IDX, bad files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from service.client.images import load_files, load_image, to_mnist


def _draw(path: Path, box: tuple[int, int, int, int], *, dark_on_light: bool, shape: str) -> Path:
    """Draw a ring ("0") or a bar ("1") inside `box` on a 200x150 canvas and save it."""
    paper, ink = (255, 0) if dark_on_light else (0, 255)
    picture = Image.new("L", (200, 150), paper)
    pen = ImageDraw.Draw(picture)
    if shape == "ring":
        pen.ellipse(box, outline=ink, width=8)
    else:
        pen.rectangle(box, fill=ink)
    picture.save(path)
    return path


def _ink_box(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit > 25)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(digit.shape)
    total = float(digit.sum())
    return float((rows * digit).sum()) / total, float((cols * digit).sum()) / total


@pytest.mark.parametrize("box", [(20, 30, 80, 130), (120, 5, 190, 60), (60, 60, 75, 90)])
def test_ring_is_fitted_into_20px_box_and_centred_by_mass(tmp_path: Path, box) -> None:
    digit = load_image(_draw(tmp_path / "ring.png", box, dark_on_light=True, shape="ring"))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert max(_ink_box(digit)) in (20, 21)  # Lanczos may leave a faint 21st pixel
    row, col = _centre_of_mass(digit)
    assert abs(row - 13.5) <= 0.55 and abs(col - 13.5) <= 0.55
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # the frame stays paper


def test_aspect_ratio_is_kept_for_a_thin_stroke(tmp_path: Path) -> None:
    bar = load_image(
        _draw(tmp_path / "one.png", (90, 20, 99, 119), dark_on_light=True, shape="bar")
    )
    height, width = _ink_box(bar)
    assert height in (20, 21)
    assert 1 <= width <= 4  # 10x100 px scaled by 0.2 -> 2 px wide, plus anti-aliasing


def test_auto_inversion_matches_explicit_flags(tmp_path: Path) -> None:
    box = (30, 20, 90, 120)
    dark = _draw(tmp_path / "dark.png", box, dark_on_light=True, shape="ring")
    light = _draw(tmp_path / "light.png", box, dark_on_light=False, shape="ring")
    from_dark = load_image(dark)
    np.testing.assert_array_equal(from_dark, load_image(dark, invert=True))
    np.testing.assert_array_equal(from_dark, load_image(light))
    np.testing.assert_array_equal(from_dark, load_image(light, invert=False))
    # A small bar forced to the wrong polarity is a dark gap in light paper: no stroke is
    # left, and only then does the error suggest a flag, the one that helps.
    bar = Image.new("L", (60, 60), 0)
    ImageDraw.Draw(bar).rectangle((27, 10, 32, 50), fill=255)
    bar.save(tmp_path / "bar.png")
    with pytest.raises(ValueError, match=r"no digit found with --invert.*try --no-invert"):
        load_image(tmp_path / "bar.png", invert=True)


def test_transparent_background_counts_as_paper(tmp_path: Path) -> None:
    picture = Image.new("RGBA", (120, 120), (0, 0, 0, 0))  # transparent *black*
    ImageDraw.Draw(picture).ellipse((20, 20, 100, 100), outline=(0, 0, 0, 255), width=9)
    picture.save(tmp_path / "canvas.png")
    digit = load_image(tmp_path / "canvas.png")
    assert max(_ink_box(digit)) in (20, 21)
    assert digit[13:15, 13:15].max() < 50  # the hole of the ring stays empty


def test_jpeg_with_grey_paper_loads_like_png(tmp_path: Path) -> None:
    picture = Image.new("RGB", (160, 160), (200, 200, 190))
    ImageDraw.Draw(picture).ellipse((40, 30, 110, 140), outline=(40, 40, 60), width=10)
    picture.save(tmp_path / "photo.jpg", quality=85)
    picture.save(tmp_path / "photo.png")
    jpeg, png = load_image(tmp_path / "photo.jpg"), load_image(tmp_path / "photo.png")
    # JPEG blur may move the rounded paste position by one pixel; size and centring must hold.
    assert np.abs(np.subtract(_ink_box(jpeg), _ink_box(png))).max() <= 1
    for digit in (jpeg, png):  # an integer shift puts the centre within half a pixel
        assert np.abs(np.subtract(_centre_of_mass(digit), 13.5)).max() <= 0.55
    assert max(_ink_box(jpeg)) in (20, 21)
    assert jpeg[13:15, 13:15].max() < 50  # grey paper inside the ring is not ink


def test_load_files_stacks_pictures_and_idx_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    header = b"\x00\x00\x08\x03" + struct.pack(">III", 3, 28, 28)
    (tmp_path / "few-images.idx3-ubyte").write_bytes(header + archive.tobytes())
    (tmp_path / "few-images.idx3-ubyte.gz").write_bytes(gzip.compress(header + archive.tobytes()))
    ring = _draw(tmp_path / "ring.png", (20, 30, 80, 130), dark_on_light=True, shape="ring")
    raw, packed = tmp_path / "few-images.idx3-ubyte", tmp_path / "few-images.idx3-ubyte.gz"
    names, images = load_files([ring, raw, packed])
    assert names == [str(ring)] + [f"{path}[{i}]" for path in (raw, packed) for i in range(3)]
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    # IDX digits are already MNIST-shaped: passed through untouched, gzip or not.
    np.testing.assert_array_equal(images[1:], np.concatenate([archive, archive]))


def test_corrupt_and_truncated_files_raise_value_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_bytes(b"this is not a picture")
    with pytest.raises(ValueError, match=r"notes\.png: not a picture \(not PNG, JPEG"):
        load_image(tmp_path / "notes.png")
    good = _draw(tmp_path / "ring.png", (20, 30, 80, 130), dark_on_light=True, shape="ring")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_files([tmp_path / "cut.png"])
    with pytest.raises(ValueError, match=r"missing\.png: cannot read file"):
        load_files([tmp_path / "missing.png"])


def test_bad_idx_file_raises_value_error(tmp_path: Path) -> None:
    (tmp_path / "short.idx").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28))
    with pytest.raises(ValueError, match=r"short\.idx: not a valid IDX image file"):
        load_files([tmp_path / "short.idx"])


def test_blank_picture_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="blank"):
        to_mnist(np.full((50, 40), 250, dtype=np.uint8))
    Image.new("L", (50, 40), 250).save(tmp_path / "empty.png")
    with pytest.raises(ValueError, match=r"empty\.png: no digit found: the image is blank"):
        load_files([tmp_path / "empty.png"])


def test_blank_message_is_a_plain_sentence() -> None:
    uniform = "no digit found: the image is blank: every pixel has the same grey level"
    with pytest.raises(ValueError, match=f"^{uniform}$"):
        to_mnist(np.full((50, 40), 250, dtype=np.uint8))
    faint = np.full((50, 40), 250, dtype=np.uint8)
    faint[20:30, 18:22] = 247  # 3 levels darker: no digit a person would see
    faint_says = r"^no digit found: the image is blank: its greys differ by at most 3 grey levels$"
    with pytest.raises(ValueError, match=faint_says):
        to_mnist(faint)


def test_wrong_array_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D grayscale"):
        to_mnist(np.zeros((4, 4, 3), dtype=np.uint8))


def test_no_files_is_refused() -> None:
    with pytest.raises(ValueError, match="no input files"):
        load_files([])


def _encoded(fmt: str) -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.effect_noise((64, 64), 60).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_every_decoding_error_describes_the_bytes_not_a_python_object(fmt: str) -> None:
    """Empty, unknown, and every truncation of each format: a ValueError describing the bytes,
    never `<_io.BytesIO object at 0x...>` (Pillow's own message names its file object)."""
    from service.client.picture import decode_picture

    data = _encoded(fmt)
    cuts = sorted({0, 4, 8, 16, 33, 60, 100, len(data) // 2, len(data) - 1})  # >= signatures
    seen = 0
    for cut in cuts:
        try:
            decode_picture(data[:cut])
        except ValueError as err:
            seen += 1
            message = str(err)
            assert "object at 0x" not in message and "<" not in message, (cut, message)
            assert message.startswith(("empty", "a damaged or truncated")), message
    assert seen >= len(cuts) // 2  # most cuts are unreadable (some formats decode a prefix)
    with pytest.raises(ValueError, match=r"^empty \(0 bytes\), not a picture$"):
        decode_picture(b"")
    with pytest.raises(
        ValueError, match=r'starts with bytes 25 50 44 46 2d 31 2e 37 \("%PDF-1\.7"\)'
    ):
        decode_picture(b"%PDF-1.7\n...")

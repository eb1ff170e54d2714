"""A dataset image that cannot be decoded, or is larger than the pixel limit, is an error naming the image."""

import pytest
from PIL import Image

from sophia_trl.data.images import resolve_image


def test_an_image_over_the_pixel_limit_is_refused_with_its_size(tmp_path):
    Image.new("RGB", (100, 50), "red").save(tmp_path / "big.png")
    assert resolve_image("big.png", tmp_path, max_pixels=5000) == str((tmp_path / "big.png").resolve())
    with pytest.raises(ValueError, match=r"image 'big.png' .* is 100x50 = 5000 pixels, more than the limit of 4999"):
        resolve_image("big.png", tmp_path, max_pixels=4999)


def test_a_truncated_image_cannot_be_opened(tmp_path):
    Image.new("RGB", (64, 64), "red").save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:40])
    with pytest.raises(ValueError, match=r"image 'cut.png' .* cannot be opened as an image"):
        resolve_image("cut.png", tmp_path)

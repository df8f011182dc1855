"""One pixel limit where every image and mask is decoded: a file announcing a huge image is refused from its header."""

import shutil
import struct
import zlib

import pytest

from tests.conftest import TINY, assert_errors, run_main


def bomb_png(path, width=30000, height=30000):
    """A PNG of a few bytes whose header announces width x height 8-bit gray pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture
def bombed(data_dir, tmp_path):
    """A copy of the phantom data set with one training image and one val mask replaced by bombs."""
    root = tmp_path / "d"
    shutil.copytree(data_dir / "phantom", root)
    image = sorted((root / "train/images").rglob("*.png"))[0]
    mask = sorted((root / "val/masks").rglob("*.png"))[0]
    bomb_png(image)
    bomb_png(mask)
    return root, image, mask


@pytest.mark.parametrize("command", ["check", "train", "evaluate"])
def test_every_command_refuses_a_bomb_before_decoding_it(command, bombed, trained_run, tmp_path):
    root, image, mask = bombed
    log = f"hydra.run.dir={tmp_path / 'log'}"
    args = {"check": [f"data.root={root}", "data.image_size=64", log],
            "train": [*(o for o in TINY if o != "data=phantom"), f"data.root={root}", log],
            "evaluate": [f"ckpt_path={trained_run / 'checkpoints/last.ckpt'}", f"data_dir={root / 'val'}", log]}
    result = run_main(f"tumorseg.{command}", *args[command])
    named = mask if command == "evaluate" else image
    assert_errors(result, named)
    assert "30000x30000" in result.stderr or "decompression bomb" in result.stderr

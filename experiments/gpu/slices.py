"""Carry a slice data set to a GPU machine that cannot download it: one file, lossless.

    python experiments/gpu/slices.py pack   ../shared/data/lung-ct-slices shared-pack/lung.npz
    python experiments/gpu/slices.py unpack shared-pack/lung.npz /tmp/lung-ct-slices

Images travel as lossless WebP (16% smaller than the PNGs, which the device tool's 64 MiB limit
needs), masks as packed bits under xz; `unpack` writes the same {train,val}/{images,masks} tree.
"""

import io
import lzma
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def pack(root: Path, out: Path) -> None:
    names = sorted(p.relative_to(root).as_posix() for p in root.glob("*/images/*/*.png"))
    blobs, masks = [], []
    for name in names:
        image = cv2.imread(str(root / name), cv2.IMREAD_GRAYSCALE)
        buffer = io.BytesIO()
        # method 6 is 15x slower for 1% less
        Image.fromarray(image).save(buffer, format="WEBP", lossless=True, quality=100, method=5)
        blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
        mask = cv2.imread(str(root / name.replace("/images/", "/masks/", 1)), cv2.IMREAD_GRAYSCALE)
        masks.append(np.packbits(mask > 127))
    shape = np.array(image.shape)
    np.savez(out, names=np.array(names), sizes=np.array([len(b) for b in blobs]), blob=np.concatenate(blobs),
             masks=np.frombuffer(lzma.compress(np.stack(masks).tobytes(), preset=9), np.uint8), shape=shape)
    print(f"{len(names)} slices -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def unpack(packed: Path, root: Path) -> None:
    data = np.load(packed)
    h, w = data["shape"]
    packed_masks = np.frombuffer(lzma.decompress(data["masks"].tobytes()), np.uint8).reshape(len(data["names"]), -1)
    masks = np.unpackbits(packed_masks, axis=1)[:, : h * w].reshape(-1, h, w)
    ends = np.cumsum(data["sizes"])
    for name, end, size, mask in zip(data["names"], ends, data["sizes"], masks):
        image = cv2.imdecode(data["blob"][end - size : end], cv2.IMREAD_GRAYSCALE)
        for path, pixels in ((root / name, image), (root / name.replace("/images/", "/masks/", 1), mask * 255)):
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    print(f"{len(data['names'])} slices -> {root}")


if __name__ == "__main__":
    command, source, target = sys.argv[1:4]
    {"pack": pack, "unpack": unpack}[command](Path(source), Path(target))

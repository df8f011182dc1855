"""The rule of every command that writes: never over its input, never over a file it did not create, never
through a symlink, and a failed write is an error that names the file."""

import os
from pathlib import Path

import cv2
import numpy as np

from tumorseg.errors import UserError


def check_apart(output: Path, inputs: list[Path], option: str = "output") -> None:
    """Refuse an output folder that is one of the inputs, lies inside one, or holds one."""
    out = Path(output).expanduser().resolve()
    for given in inputs:
        source = Path(given).expanduser().resolve()
        if out == source or source in out.parents:
            raise UserError(f"{option}={output} is inside the input {given}: write to a folder apart from it, "
                            f"e.g. {option}={source.parent / (source.stem + '-predictions')}")
        if out in source.parents:
            raise UserError(f"{option}={output} holds the input {given}: write to a folder apart from it, "
                            f"e.g. {option}={out / 'predictions'}")


class OutputFiles:
    """The files one run may write: claimed all at once before any is written, then written once each."""

    def __init__(self, overwrite: bool = False):
        self.overwrite = overwrite
        self.claimed: set[Path] = set()

    def claim(self, paths: list[Path]) -> None:
        """Refuse (before anything is written) a path that is a symlink or a folder, or exists without overwrite."""
        for path in paths:
            if path.is_symlink():
                raise UserError(f"{path} is a symbolic link: remove it, or write to another folder (output=)")
            if path.is_dir():
                raise UserError(f"{path} is a folder where a file goes: remove it or write to another folder (output=)")
            if path.exists() and not self.overwrite:
                raise UserError(f"{path} exists and was not written by this run: write to another folder (output=), "
                                f"or add overwrite=true to replace such files")
        self.claimed.update(paths)

    def _target(self, path: Path) -> Path:
        if path not in self.claimed:
            raise RuntimeError(f"{path} was not claimed before writing")  # a bug of the command, not the user's
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{path.parent} cannot be created ({err.strerror}): choose another output=") from None
        if path.is_symlink():  # appeared since the claim
            raise UserError(f"{path} is a symbolic link: remove it, or write to another folder (output=)")
        return path

    def image(self, path: Path, pixels: np.ndarray) -> None:
        """Write an image with OpenCV (format from the suffix); its False return becomes an error naming the file."""
        target = self._target(path)
        try:
            ok = cv2.imwrite(str(target), pixels)
        except cv2.error:
            ok = False
        if not ok or not target.is_file() or os.path.getsize(target) == 0:
            raise UserError(f"{target} could not be written (disk full, or not writable): free space or choose "
                            f"another output=")

    def text(self, path: Path, content: str) -> None:
        """Write a text file; an OSError (disk full, no permission) becomes an error naming the file."""
        target = self._target(path)
        try:
            with open(target, "w", newline="", encoding="utf-8") as fh:
                fh.write(content)
        except OSError as err:
            raise UserError(f"{target} could not be written ({err.strerror}): free space or choose another "
                            f"output=") from None

"""The rule of every command that writes: never over its input, never over a file it did not create, never
through a symbolic link below its output folder, every file in one step, and a failed write is an error that names
the file.

The output folder is resolved once (it may itself be reached through links); every folder and file written below
it must be a real one that resolves inside it. A file is written to a hidden temporary name beside it
(`.<name>.tmp-<pid><suffix>`), synced, and renamed into place: an interrupt or a full disk leaves the old file (or
none), never a part of one, and a file that existed is replaced by the rename, never written into.
"""

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tumorseg.errors import UserError

TEMP_NAME = re.compile(r"\..+\.tmp-\d+(\.[^.]+)*")


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


def temp_path(path: Path) -> Path:
    """The hidden name beside path that it is written under; the suffix is kept (.nii.gz whole), as SimpleITK and
    OpenCV pick the format from it."""
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def is_temp(path: Path) -> bool:
    """Whether path is named as temp_path names (a leftover of a killed run, or a write in progress)."""
    return TEMP_NAME.fullmatch(path.name) is not None


def sync(path: Path) -> None:
    """Flush a written file to the disk, so that the rename never makes a file whose data is still pending."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: Path, option: str = "output") -> Iterator[Path]:
    """Yield the temporary path to write path's content to; on success it is checked non-empty, synced and renamed
    to path in one step. Any exception (an interrupt included) removes it and leaves path as it was; an OSError,
    or a UserError naming the temporary file, becomes one UserError naming path."""
    temp = temp_path(path)
    try:
        try:
            yield temp
            if not temp.is_file() or temp.stat().st_size == 0:
                raise OSError(errno.EIO, "nothing was written: disk full?")
            sync(temp)
            os.replace(temp, path)
        except OSError as err:
            raise UserError(f"{path} could not be written ({err.strerror or 'disk full, or not writable'}): free "
                            f"space or choose another {option}=") from None
        except UserError as err:
            if str(temp) not in str(err):
                raise
            raise UserError(str(err).replace(str(temp), str(path))) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise


def imwrite(path: Path, pixels: np.ndarray) -> None:
    """cv2.imwrite (format from the suffix), its False return or error an OSError."""
    try:
        ok = cv2.imwrite(str(path), pixels)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(errno.EIO, "disk full, or not writable")


class OutputFiles:
    """The files one run may write below its output folder (root): claimed all at once before any is written,
    then written once each, every one in one step (replacing).

    option names the setting that chose root, for the messages (output, hydra.run.dir, out).
    """

    def __init__(self, root: Path, overwrite: bool = False, option: str = "output"):
        self.given = Path(os.path.abspath(Path(root).expanduser()))
        self.root = self.given.resolve()  # once: a link above the output folder is the user's choice
        self.overwrite, self.option = overwrite, option
        self.claimed: dict[Path, Path] = {}

    def real(self, path: Path) -> Path:
        """path's place below the resolved root; refused when a folder or file on the way below the root is a
        symbolic link (or a file where a folder goes), or when it would resolve outside the root."""
        try:
            parts = Path(os.path.abspath(path)).relative_to(self.given).parts
        except ValueError:
            raise RuntimeError(f"{path} is not below {self.given}") from None  # a bug of the command
        real, shown = self.root, self.given
        for depth, part in enumerate(parts, 1):
            real, shown = real / part, shown / part
            if real.is_symlink():
                raise UserError(f"{shown} is a symbolic link: files are written only into real folders below "
                                f"{self.given}; remove the link, or choose another {self.option}=")
            if depth < len(parts) and real.exists() and not real.is_dir():
                raise UserError(f"{shown} is a file where a folder goes: remove it, or choose another "
                                f"{self.option}=")
        if real.resolve() != real:
            raise UserError(f"{shown} resolves to {real.resolve()}, outside {self.given}: choose another "
                            f"{self.option}=")
        return real

    def check(self, paths: list[Path]) -> None:
        """Refuse (before anything is written or removed) a path that is not a real place below the root."""
        for path in paths:
            self.real(path)

    def claim(self, paths: list[Path]) -> None:
        """Refuse (before anything is written) a path that is not a real place below the root, is a folder, or
        exists without overwrite."""
        for path in paths:
            real = self.real(path)
            if real.is_dir():
                raise UserError(f"{path} is a folder where a file goes: remove it or choose another {self.option}=")
            if real.exists() and not self.overwrite:
                raise UserError(f"{path} exists and was not written by this run: choose another {self.option}=, "
                                f"or add overwrite=true to replace such files")
            self.claimed[Path(path)] = real

    def _target(self, path: Path) -> Path:
        if Path(path) not in self.claimed:
            raise RuntimeError(f"{path} was not claimed before writing")  # a bug of the command, not the user's
        target = self.real(path)  # again: a link may have appeared since the claim
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{path.parent} cannot be created ({err.strerror}): choose another "
                            f"{self.option}=") from None
        return target

    @contextlib.contextmanager
    def writing(self, path: Path) -> Iterator[Path]:
        """A claimed path's temporary file to write (replacing): renamed into place when the block ends."""
        with replacing(self._target(path), self.option) as temp:
            yield temp

    def image(self, path: Path, pixels: np.ndarray) -> None:
        """Write an image with OpenCV (format from the suffix)."""
        with self.writing(path) as temp:
            imwrite(temp, pixels)

    def text(self, path: Path, content: str) -> None:
        """Write a text file (UTF-8, newlines as given)."""
        with self.writing(path) as temp, open(temp, "w", newline="", encoding="utf-8") as fh:
            fh.write(content)


def replace_text(root: Path, path: Path, content: str, option: str = "output") -> Path:
    """Write one text file below root in one step, replacing an earlier one (by rename, never through a link)."""
    files = OutputFiles(root, overwrite=True, option=option)
    files.claim([path])
    files.text(path, content)
    return path

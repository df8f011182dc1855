"""What is wrong with a data set: errors (each naming a file and the fix) and grouped warnings."""

import logging
from collections import defaultdict
from pathlib import Path

from tumorseg.errors import UserError

log = logging.getLogger("tumorseg")

# One warning line per kind and data set, not one per file.
NOTES = {
    "color": "RGB/RGBA/palette file(s) converted to gray",
    "sixteen_bit": "16-bit image(s) scaled to 8 bits",
    "multilevel": "mask(s) with values other than 0 and one level (e.g. JPEG artefacts), binarized at "
                  "data.mask_threshold (set data.strict=true to refuse them)",
    "ignored": "non-image file(s) ignored",
}


class Problems:
    """Collects errors and notes while a data set is read, so that all are reported at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: dict[str, list[Path]] = defaultdict(list)
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def note(self, kind: str, path: Path) -> None:
        self.notes[kind].append(path)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def warning_lines(self) -> list[str]:
        lines = [f"{len(paths)} {NOTES[kind]} (first: {paths[0]})" for kind, paths in self.notes.items() if paths]
        return lines + self.warnings

    def log_warnings(self) -> None:
        for line in self.warning_lines():
            log.warning(line)

    def raise_errors(self, root: Path | str = "<data root>") -> None:
        """One line: the first error, and how many more there are and how to list them."""
        if not self.errors:
            return
        more = len(self.errors) - 1
        hint = f" (+{more} more problem(s): python -m tumorseg.check data.root={root} lists them)" if more else ""
        raise UserError(self.errors[0] + hint)

"""evaluate's one result, of either kind: slices in the data layout (pooled figures, per subject) or CT volumes
(mean 3D figures, per case). `to_json()` is metrics.json's content; the result also reads as that dict
(result["dice"]), for the Python callers of tumorseg.evaluate.evaluate.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, eq=False)
class Result(Mapping):
    """kind: "slices" or "volumes"; source: the data scored (the data part's folder, or the volumes' options);
    figures: the pooled (slices) or mean (volumes) figures, in metrics.json's order; settings: the choices in force;
    per_item: figures by subject (slices) or case (volumes); labels: the tumor label values (volumes)."""

    kind: Literal["slices", "volumes"]
    source: str
    ckpt_path: str
    figures: dict[str, Any]
    settings: dict[str, Any]
    per_item: dict[str, dict]
    labels: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """metrics.json's content: figures, settings, the data (data_dir= for slices, data= and label= for
        volumes), ckpt_path, and the per-item figures under "subjects" or "cases"."""
        if self.kind == "slices":
            return {**self.figures, **self.settings, "data_dir": self.source, "ckpt_path": self.ckpt_path,
                    "subjects": self.per_item}
        return {**self.figures, **self.settings, "data": self.source, "label": list(self.labels),
                "ckpt_path": self.ckpt_path, "cases": self.per_item}

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())

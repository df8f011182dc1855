"""Which CT volumes evaluate scores against which label volumes.

    data_dir=<task folder>               an MSD or nnU-Net v2 task (dataset.json, imagesTr/, labelsTr/): its
                                         training cases, label= checked against dataset.json's labels
    images=<folder> labels=<folder>      every volume (file or DICOM series folder) below images/, paired with the
                                         label volume of the same name below labels/ (an image named <case>_0000,
                                         nnU-Net's channel suffix, pairs with <case>)
    cases=[...]                          only these cases

Every label volume is read before the model loads (and again as its case is scored): one that is no label
volume (a CT image) is refused, and so is a tumor label value that none of them holds (it would score Dice 0, or
none, for every case).
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from omegaconf import OmegaConf

from tumorseg.errors import UserError
from tumorseg.inference.sources import volume_sources
from tumorseg.volumes.headers import read_limits
from tumorseg.volumes.io import read_volume
from tumorseg.volumes.tasks import Case, check_grid, chosen_labels, task_cases

CHANNEL_SUFFIX = "_0000"
# A label volume holds a few values (0 and its structures' labels); a CT image thousands, and negative ones.
MAX_LABEL_VALUES = 256


def evaluation_cases(cfg) -> tuple[list[Case], tuple[int, ...], str] | None:
    """(cases, tumor label values, where they came from) when cfg names volumes; None for the 2D slice layout.
    Every label volume's grid is checked against its image's first (from the headers, for volume files)."""
    images, labels, data_dir = cfg.get("images"), cfg.get("labels"), cfg.get("data_dir")
    if images or labels:
        if not (images and labels):
            raise UserError("images= and labels= go together: images=<folder of CT volumes> labels=<folder of "
                            "their label volumes>")
        if data_dir:
            raise UserError(f"data_dir={data_dir} and images=/labels= both name the data: give one of them")
        cases, values = paired_cases(Path(images).expanduser(), Path(labels).expanduser()), label_values(cfg)
        source = f"images={images} labels={labels}"
    elif data_dir and (Path(data_dir).expanduser() / "dataset.json").is_file():
        if cfg.get("split"):
            raise UserError(f"split={cfg.split} is for the slice layout; {data_dir} is a task folder of volumes: "
                            f"drop split= (cases=[...] chooses cases)")
        cases, known, path = task_cases(Path(data_dir).expanduser())
        values, source = chosen_labels(cfg.get("label", 1), known, path), str(data_dir)
    else:
        return None
    cases = chosen_cases(cfg.get("cases"), cases)
    for case in cases:
        if case.image.is_file():
            check_grid(case)
    check_label_values(cases, values, source, read_limits(cfg))
    return cases, values, source


def chosen_cases(option, cases: list[Case]) -> list[Case]:
    """The cases named by cases=[...] (all when null), each checked to be one of them."""
    if option is None:
        return cases
    wanted = [str(v) for v in (option if OmegaConf.is_list(option) else [option])]
    if not wanted:
        raise UserError(f"cases=[] chooses no case: name the cases to score, e.g. cases=[{cases[0].name}], or drop "
                        f"cases= to score all {len(cases)}")
    by_name = {c.name: c for c in cases}
    missing = next((n for n in wanted if n not in by_name), None)
    if missing is not None:
        raise UserError(f"cases: {missing} is not one of the {len(cases)} cases: choose from "
                        f"{', '.join(sorted(by_name)[:8])}{', ...' if len(by_name) > 8 else ''}")
    return [by_name[n] for n in dict.fromkeys(wanted)]


def label_values(cfg) -> tuple[int, ...]:
    """label=1 or label=[1,2] of images=/labels= (checked by config_checks.RULES; here against the volumes)."""
    option = cfg.get("label", 1)
    return tuple(sorted(set(option if OmegaConf.is_list(option) else [option])))


def held_values(case: Case, limits: dict[str, int]) -> set[int]:
    """The values case's label volume holds; UserError when it is no label volume (a CT: negative or fractional
    values, or more than MAX_LABEL_VALUES of them)."""
    image = read_volume(case.label, **limits)  # held: the view below reads its buffer
    values = np.unique(sitk.GetArrayViewFromImage(image))
    fractional = not np.array_equal(values, np.round(values))
    if len(values) > MAX_LABEL_VALUES or values[0] < 0 or fractional:
        raise UserError(f"{case.label} is not a label volume ({len(values)} distinct values, {values[0]:g} to "
                        f"{values[-1]:g}{', fractional ones among them' if fractional else ''}): a label volume "
                        f"holds a few whole numbers >= 0 (0 background, 1 tumor, ...); name the label volumes, not "
                        f"the CT images")
    return {int(v) for v in values}


def check_label_values(cases: list[Case], labels: tuple[int, ...], source: str, limits: dict[str, int]) -> None:
    """Refuse a tumor label value that no label volume holds (its Dice would be 0 or undefined for every case), and
    a label volume that is no label volume."""
    held = set().union(*(held_values(case, limits) for case in cases))
    missing = [v for v in labels if v not in held]
    if missing:
        shown, marked = sorted(held), sorted(held - {0})
        listing = ", ".join(map(str, shown[:12])) + (", ..." if len(shown) > 12 else "")
        fix = (f"choose label= from those, e.g. label={marked[0]}" if marked else
               "they mark no structure: check the label volumes")
        raise UserError(f"label={missing[0]} occurs in no label volume of {source} ({len(cases)} case(s)): they hold "
                        f"{listing}; {fix}")


def paired_cases(images: Path, labels: Path) -> list[Case]:
    """Each volume below images/ with the label volume of its name below labels/; an image without one is refused."""
    for option, folder in (("images", images), ("labels", labels)):
        if not folder.is_dir():
            raise UserError(f"{option}={folder} is not a folder: name a folder of {option[:-1]} volumes")
    found = volume_sources(str(images))
    if not found:
        raise UserError(f"images={images} holds no volumes (.nii.gz, .nii, .nrrd, .mha, DICOM series folders)")
    truth = {s.name: s.path for s in volume_sources(str(labels)) or []}
    cases = []
    for source in found:
        name = source.name.removesuffix(CHANNEL_SUFFIX) if source.name not in truth else source.name
        if name not in truth:
            raise UserError(f"{source.path} has no label volume in labels={labels}: add {labels / name}.nii.gz "
                            f"(the image's name), or move the image out of images=")
        cases.append(Case(name, source.path, truth[name]))
    return cases

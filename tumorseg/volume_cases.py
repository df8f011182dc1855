"""Which CT volumes evaluate scores against which label volumes.

    data_dir=<task folder>               an MSD or nnU-Net v2 task (dataset.json, imagesTr/, labelsTr/): its
                                         training cases, label= checked against dataset.json's labels
    images=<folder> labels=<folder>      every volume (file or DICOM series folder) below images/, paired with the
                                         label volume of the same name below labels/ (an image named <case>_0000,
                                         nnU-Net's channel suffix, pairs with <case>)
    cases=[...]                          only these cases
"""

from pathlib import Path

from omegaconf import OmegaConf

from tumorseg.data.sources import volume_sources
from tumorseg.data.tasks import Case, check_grid, chosen_labels, task_cases
from tumorseg.errors import UserError

CHANNEL_SUFFIX = "_0000"


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
    return cases, values, source


def chosen_cases(option, cases: list[Case]) -> list[Case]:
    """The cases named by cases=[...] (all when null), each checked to be one of them."""
    if option is None:
        return cases
    wanted = [str(v) for v in (option if OmegaConf.is_list(option) else [option])]
    by_name = {c.name: c for c in cases}
    missing = next((n for n in wanted if n not in by_name), None)
    if missing is not None:
        raise UserError(f"cases: {missing} is not one of the {len(cases)} cases: choose from "
                        f"{', '.join(sorted(by_name)[:8])}{', ...' if len(by_name) > 8 else ''}")
    return [by_name[n] for n in dict.fromkeys(wanted)]


def label_values(cfg) -> tuple[int, ...]:
    """label=1 or label=[1,2] of images=/labels= (no dataset.json to check them against): positive whole numbers."""
    option = cfg.get("label", 1)
    values = list(option) if OmegaConf.is_list(option) or isinstance(option, (list, tuple)) else [option]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise UserError(f"label={option}: give the tumor's label value(s) in the label volumes, e.g. label=1 or "
                        f"label=[1,2]")
    return tuple(sorted(set(values)))


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

import json

import cv2
import numpy as np
import pytest

from tumorseg.data import SegDataModule, find_pairs
from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import check_window
from tumorseg.errors import UserError

SPLIT = dict(name="split", group_by="subject", test_size=0.25, val_size=0.2, random_state=42)


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def blank(value=0, size=32):
    return np.full((size, size), value, np.uint8)


def test_pairs_match_by_relative_path_not_sort_order(tmp_path):
    # Sort order of the two folders differs (b.jpg vs a.png): pairing must still be by name.
    write(tmp_path / "images/S1/1.png", blank(10))
    write(tmp_path / "images/S1/2.jpg", blank(20))
    write(tmp_path / "masks/S1/2.png", blank(255))
    write(tmp_path / "masks/S1/1.bmp", blank(0))
    pairs = {p.key: p for p in find_pairs(tmp_path)}
    assert pairs["S1/1"].mask.name == "1.bmp" and pairs["S1/2"].mask.name == "2.png"
    assert {p.subject for p in pairs.values()} == {"S1"}


def test_subject_folders_may_be_symlinks_and_a_link_loop_ends(tmp_path):
    from tumorseg.inference.sources import image_subjects

    for kind in ("images", "masks"):
        write(tmp_path / f"store/{kind}/S7/3.png", blank(255 if kind == "masks" else 9))
        (tmp_path / f"part/{kind}").mkdir(parents=True)
        (tmp_path / f"part/{kind}/S7").symlink_to(tmp_path / f"store/{kind}/S7", target_is_directory=True)
    (tmp_path / "part/images/S7/loop").symlink_to(tmp_path / "part/images", target_is_directory=True)
    pairs = find_pairs(tmp_path / "part")
    assert [(p.key, p.subject) for p in pairs] == [("S7/3", "S7")]
    (subject,) = image_subjects(str(tmp_path / "part"))[1]
    assert (subject.name, subject.files) == ("S7", [tmp_path / "part/images/S7/3.png"])


def test_flat_layout_makes_each_image_its_own_subject(tmp_path):
    for name in ("a", "b"):
        write(tmp_path / f"images/{name}.png", blank())
        write(tmp_path / f"masks/{name}.png", blank())
    assert [p.subject for p in find_pairs(tmp_path)] == ["a", "b"]


def test_image_without_mask_is_named(tmp_path):
    write(tmp_path / "images/S1/1.png", blank())
    write(tmp_path / "images/S1/2.png", blank())
    write(tmp_path / "masks/S1/1.png", blank())
    with pytest.raises(UserError, match=r"images/S1/2.png has no mask"):
        find_pairs(tmp_path)


def test_mask_without_image_is_named(tmp_path):
    write(tmp_path / "images/S1/1.png", blank())
    write(tmp_path / "masks/S1/1.png", blank())
    write(tmp_path / "masks/S1/9.png", blank())
    with pytest.raises(UserError, match=r"masks/S1/9.png has no image"):
        find_pairs(tmp_path)


def test_dataset_resizes_normalizes_and_binarizes(tmp_path):
    write(tmp_path / "images/S1/1.png", blank(255, 64))
    mask = blank(0, 64)
    mask[8:24, 8:24] = 200
    write(tmp_path / "masks/S1/1.png", mask)
    ds = SegDataset(find_pairs(tmp_path), image_size=32, mean=0.5, std=0.25)
    x, y, i = ds[0]
    assert x.shape == y.shape == (1, 32, 32) and i == 0
    assert float(x.max()) == pytest.approx(2.0)  # (1 - 0.5) / 0.25
    assert set(y.unique().tolist()) == {0.0, 1.0} and int(y.sum()) == 64


def test_split_approach_carves_test_by_subject_and_keeps_provided_val(data_dir):
    dm = SegDataModule(str(data_dir / "phantom"), SPLIT, image_size=64)
    dm.setup()
    subjects = {part: {s.subject for s in samples} for part, samples in dm.parts.items()}
    assert subjects["train"].isdisjoint(subjects["test"])
    assert subjects["val"] == {s.subject for s in find_pairs(data_dir / "phantom/val")}
    assert len(subjects["test"]) == 2 and len(subjects["train"]) == 4


def test_split_approach_carves_val_when_there_is_none(data_dir, tmp_path):
    (tmp_path / "train").symlink_to(data_dir / "phantom/train")
    dm = SegDataModule(str(tmp_path), SPLIT, image_size=64)
    dm.setup()
    subjects = [{s.subject for s in dm.parts[p]} for p in ("train", "val", "test")]
    assert all(a.isdisjoint(b) for i, a in enumerate(subjects) for b in subjects[i + 1 :])
    assert sum(len(dm.parts[p]) for p in dm.parts) == len(find_pairs(data_dir / "phantom/train"))


def test_full_approach_uses_all_of_train_and_the_provided_val(data_dir):
    dm = SegDataModule(str(data_dir / "phantom"), dict(name="full"), image_size=64)
    dm.setup()
    assert set(dm.parts) == {"train", "val"}
    assert len(dm.parts["train"]) == len(find_pairs(data_dir / "phantom/train"))


def test_full_approach_without_val_is_a_clear_error(data_dir, tmp_path):
    (tmp_path / "train").symlink_to(data_dir / "phantom/train")
    with pytest.raises(UserError, match=r"approach=full validates on .*/val, which is missing"):
        SegDataModule(str(tmp_path), dict(name="full")).setup()


def test_phantom_is_deterministic_and_has_empty_slices(tmp_path):
    from tumorseg.data import generate_phantom

    a = generate_phantom(tmp_path / "a", train_subjects=2, val_subjects=1, slices=12, size=64)
    b = generate_phantom(tmp_path / "b", train_subjects=2, val_subjects=1, slices=12, size=64)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    masks = [cv2.imread(str(a / f), cv2.IMREAD_GRAYSCALE) for f in files if f.parts[1] == "masks"]
    empty = np.mean([m.max() == 0 for m in masks])
    assert 0.05 < empty < 0.4
    assert all(set(np.unique(m)) <= {0, 255} for m in masks)


def test_tumor_oversampling_sets_the_share_of_drawn_slices(data_dir):
    dm = SegDataModule(str(data_dir / "phantom"), dict(name="full"), image_size=64, tumor_share=0.9)
    dm.setup()
    has_tumor = dm.datasets["train"].masks.reshape(len(dm.datasets["train"]), -1).any(axis=1)
    assert has_tumor.mean() < 0.75  # so that 0.9 is a change
    drawn = [i for epoch in range(20) for i, _ in _epoch(dm.train_dataloader().sampler, epoch)]
    assert abs(has_tumor[drawn].mean() - 0.9) < 0.05
    with pytest.raises(UserError, match="tumor_share=1.5"):
        SegDataModule(str(data_dir / "phantom"), dict(name="full"), tumor_share=1.5)


def test_train_crop_cuts_training_slices_around_their_tumor_only(data_dir):
    import albumentations as A

    one = SegDataModule(str(data_dir / "phantom"), dict(name="full"), A.HorizontalFlip(p=0.5), train_crop=32)
    assert [type(t).__name__ for t in one.train_transform()] == ["HorizontalFlip", "CropNonEmptyMaskIfExists"]
    flip = A.Compose([A.HorizontalFlip(p=0.5)])
    dm = SegDataModule(str(data_dir / "phantom"), dict(name="full"), flip, image_size=64, train_crop=32)
    dm.setup()
    train, val = dm.datasets["train"], dm.datasets["val"]
    with_tumor = [i for i in range(len(train)) if train.masks[i].any()]
    for i in with_tumor[:10]:
        x, y, _ = train[i]
        assert x.shape == y.shape == (1, 32, 32) and y.sum() > 0  # the crop holds part of the slice's tumor
    x, y, _ = train[next(i for i in range(len(train)) if not train.masks[i].any())]
    assert x.shape == (1, 32, 32) and y.sum() == 0
    assert val[0][0].shape == (1, 64, 64)  # evaluation stays on whole slices
    for bad in (48, 96):
        with pytest.raises(UserError, match=f"data.train_crop={bad}"):
            SegDataModule(str(data_dir / "phantom"), dict(name="full"), image_size=64, train_crop=bad)


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_a_root_convert_made_through_a_window_needs_that_window(tmp_path):
    records = tmp_path / ".convert"
    records.mkdir()
    (records / "a.json").write_text(json.dumps({"settings": {"window": [-600, 1500]}, "files": [], "done": True}))
    check_window(tmp_path, (-600.0, 1500.0))
    with pytest.raises(UserError, match=r"^data.window=null, but tumorseg convert made the slices of .* with "
                                        r"preprocess.window=\[-600,1500\] \(.*a.json\): add data.window=\[-600,1500\]"):
        check_window(tmp_path, None)
    (records / "b.json").write_text(json.dumps({"settings": {"window": None}}))
    with pytest.raises(UserError, match=r"different windows \(\[-600,1500\] \(a.json\), null \(b.json\)\)"):
        check_window(tmp_path, (-600.0, 1500.0))
    (records / "b.json").write_text("{cut short")  # a record that cannot be read says nothing
    check_window(tmp_path, (-600.0, 1500.0))
    check_window(tmp_path / "elsewhere", None)  # slices convert did not make: whatever data.window says

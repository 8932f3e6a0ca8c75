"""The table and image-folder readers (gmdsl/data/table.py, images.py): fields, splits,
missing labels and class names, read directly and through open_dataset, and the messages
for a user's mistakes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from gmdsl.data import DataError, open_dataset
from gmdsl.data.images import read_image_folder
from gmdsl.data.table import read_table

# ---------------------------------------------------------------- tables


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


POINTS = """\
x_0,x_1,x_2,y,animal,bright,score,split
1,2,3.5,0,cat,true,0.5,train
4,5,6,,dog,false,,train
7,8,9,1,,true,1.5,test
10,11,12,-2,cat,false,2.5,train
"""


def test_table_fields_dtypes_and_splits(tmp_path: Path) -> None:
    path = write(tmp_path / "points.csv", POINTS)
    data = read_table(path)
    assert (data.name, data.kind, data.path, data.files) == ("points", "table", path.resolve(), [path.resolve()])
    assert data.fields() == ["animal", "bright", "score", "x", "y"]  # x_0..x_2 are one field; split is none
    train, test = data.train, data.test
    assert train["x"].dtype == torch.float32 and train["x"].shape == (3, 3)  # a float among ints: floats
    assert torch.equal(train["x"], torch.tensor([[1, 2, 3.5], [4, 5, 6], [10, 11, 12]]))
    assert torch.equal(test["x"], torch.tensor([[7.0, 8, 9]]))
    assert train["y"].dtype == torch.int64
    assert train["y"].tolist() == [0, -1, -2] and test["y"].tolist() == [1]  # empty: -1; -2 is kept
    assert data.classes == {"animal": ["cat", "dog"]}
    assert train["animal"].tolist() == [0, 1, 0] and test["animal"].tolist() == [-1]
    assert train["bright"].dtype == torch.bool and train["bright"].tolist() == [True, False, False]
    assert train["score"].dtype == torch.float32 and math.isnan(train["score"][1])
    assert test["score"].tolist() == [1.5]


def test_table_without_split_column_has_no_test_split(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "t.csv", "a,b[0],b[1]\n1,2,3\n4,5,6\n"))
    assert data.test == {} and not data.has_test
    assert data.train["b"].dtype == torch.int64 and data.train["b"].tolist() == [[2, 3], [5, 6]]
    assert data.train["a"].shape == (2,)


def test_table_split_column_without_test_rows_has_no_test_split(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "t.csv", "a,split\n1,train\n2,train\n"))
    assert data.test == {} and data.train["a"].tolist() == [1, 2]


def test_indexed_columns_without_index_0_stay_fields(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "t.csv", "q_1,q_2,p_0\n1,2,3\n"))
    assert data.fields() == ["p", "q_1", "q_2"] and data.train["p"].shape == (1, 1)


def test_table_label_mask(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "t.csv", "y,y_observed,z,z_observed\n3,1,5,true\n0,0,6,false\n"))
    assert data.fields() == ["y", "z"]
    assert data.train["y_observed"].dtype == torch.bool and data.train["y_observed"].tolist() == [True, False]
    assert data.train["z_observed"].tolist() == [True, False]


def test_tsv(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "t.tsv", "a\tname\n1\tred car\n2\tblue car\n"))
    assert data.train["a"].tolist() == [1, 2]
    assert data.classes == {"name": ["blue car", "red car"]} and data.train["name"].tolist() == [1, 0]


def test_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    csv = read_table(write(tmp_path / "points.csv", POINTS))
    table = pa.table(
        {
            "x_0": [1, 4, 7, 10],
            "x_1": [2, 5, 8, 11],
            "x_2": [3.5, 6, 9, 12],
            "y": pa.array([0, None, 1, -2], pa.int64()),
            "animal": pa.array(["cat", "dog", None, "cat"]).dictionary_encode(),  # as pandas writes a category
            "bright": [True, False, True, False],
            "score": [0.5, None, 1.5, 2.5],
            "split": ["train", "train", "test", "train"],
        }
    )
    pq.write_table(table, tmp_path / "points.parquet")
    parquet = open_dataset(str(tmp_path / "points.parquet"))
    assert parquet.kind == "table" and parquet.classes == csv.classes
    for split in ("train", "test"):
        ours, theirs = csv.split(split), parquet.split(split)
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert ours[name].dtype == theirs[name].dtype, name
            assert torch.equal(ours[name].nan_to_num(-9), theirs[name].nan_to_num(-9)), name


def test_open_dataset_dispatches_tables(tmp_path: Path) -> None:
    for name, text in (("a.csv", "v\n1\n"), ("b.tsv", "v\n1\n"), ("C.CSV", "v\n1\n")):
        data = open_dataset(str(write(tmp_path / name, text)))
        assert data.kind == "table" and data.train["v"].tolist() == [1]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", ["line 3 of", "ragged.csv", "3 cells", "one cell per column"]),
        ("empty.csv", "a,b\n", ["empty.csv", "no rows"]),
        ("nothing.csv", "", ["cannot read", "nothing.csv", "header row"]),
        ("split.csv", "a,split\n1,train\n2,valid\n", ["split", "`valid`", "line 3", "train or test"]),
        ("split2.csv", "a,split\n1,train\n2,\n", ["split", "empty cell", "line 3", "train or test"]),
        ("mixed.csv", "a,y\n1,0\n2,1\n3,?\n4,2\n", ["`y`", "mixed.csv", "mixes numbers and text", "`?`", "line 4"]),
        ("comma.tsv", "a\tb\n1,5\tx\n2,5\ty\n", ["`a`", "numbers written as text", "`1,5`", "decimal point"]),
        ("thousands.csv", 'a\n"1 500"\n"2 000"\n', ["`a`", "numbers written as text", "`1 500` in line 2"]),
        ("mask.csv", "y,y_observed\n1,1\n2,\n", ["`y_observed`", "label mask", "line 3", "true where"]),
        ("mask2.csv", "y,y_observed\n1,1\n2,2\n", ["`y_observed`", "holds 2 in line 3", "1/0"]),
        ("gap.csv", "x_0,x_1,x_3\n1,2,3\n", ["gap.csv", "no `x_2`", "without a gap"]),
        ("text.csv", "x_0,x_1\n1,a\n", ["`x_1`", "part of field `x`", "holds text", "numbers"]),
        ("twice.csv", "a,a\n1,2\n", ["two columns named `a`", "rename"]),
        ("clash.csv", "x,x_0,x_1\n1,2,3\n", ["column `x`", "`x_0`", "rename one"]),
        ("trailing.csv", "a,b,\n1,2,\n", ["column 3", "no name", "trailing"]),
        ("semi.csv", "a;b\n1;2\n", ["semi.csv", "single column", "separated by commas"]),
        ("date.csv", "a,when\n1,2024-01-02\n", ["`when`", "dates or times", "convert it, or remove it"]),
        ("blank.csv", "a,b\n1,\n2,\n", ["`b`", "empty in every row", "remove it"]),
        ("flag.csv", "a,b\n1,true\n2,\n", ["`b`", "true/false", "line 3", "1/0"]),
        ("alltest.csv", "a,split\n1,test\n", ["alltest.csv", "no rows to train on", "split"]),
        ("onlysplit.csv", "split\ntrain\n", ["no columns besides `split`"]),
    ],
)
def test_table_mistakes(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as caught:
        read_table(path)
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read .*broken\.parquet.*to_parquet"):
        open_dataset(str(path))


def test_parquet_rows_are_named_by_index(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "split": ["train", "dev"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="`dev` in row 1: write train or test"):
        read_table(tmp_path / "t.parquet")


# ---------------------------------------------------------------- image folders


def image(path: Path, value: int, mode: str = "L", size: tuple[int, int] = (4, 3)) -> None:
    """A flat image of one value (or colour) at `path`, width x height `size`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour: int | tuple[int, ...] = value if mode == "L" else (value, value // 2, 7, 128)[: 4 if mode == "RGBA" else 3]
    Image.new(mode, size, colour).save(path)


def test_greyscale_folder(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    image(root / "seven" / "b.png", 70)
    image(root / "seven" / "a.png", 71)
    image(root / "one" / "x.bmp", 10)
    image(root / "unlabelled" / "u.png", 99)
    (root / "one" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    image(root / ".hidden" / "h.png", 1)
    image(root / "one" / ".h.png", 1)
    data = open_dataset(str(root))
    assert (data.name, data.kind, data.path) == ("digits", "images", root.resolve())
    assert data.test == {} and data.classes == {"label": ["one", "seven"]}
    images, labels = data.train["image"], data.train["label"]
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 4)  # [N, H, W]
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 1, -1]  # one/x, seven/a, seven/b, unlabelled/u
    assert images[:, 0, 0].tolist() == [10, 71, 70, 99]
    assert data.files == [root.resolve() / f for f in ("one/x.bmp", "seven/a.png", "seven/b.png", "unlabelled/u.png")]


def test_colour_folder_is_channels_first(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    image(root / "cat" / "a.png", 200, "RGB")
    image(root / "cat" / "b.png", 100, "RGBA")  # alpha dropped
    image(root / "dog" / "c.jpg", 50)  # greyscale among colour: its grey in every channel
    data = read_image_folder(root)
    images = data.train["image"]
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 3, 4)  # [N, 3, H, W]
    assert images[:, :, 0, 0].tolist() == [[200, 100, 7], [100, 50, 7], [50, 50, 50]]
    assert data.train["label"].tolist() == [0, 0, 1]


def test_split_folders_share_class_names(tmp_path: Path) -> None:
    root = tmp_path / "split"
    image(root / "train" / "b" / "1.png", 1)
    image(root / "train" / "unlabeled" / "2.png", 2)
    image(root / "test" / "a" / "3.png", 3)
    image(root / "test" / "b" / "4.gif", 4, "P")
    (root / "README.md").write_text("ignored")
    data = open_dataset(str(root))
    assert data.classes == {"label": ["a", "b"]}  # the union, sorted
    assert data.train["label"].tolist() == [1, -1] and data.test["label"].tolist() == [0, 1]
    assert data.train["image"].shape == (2, 3, 3, 4)  # a palette image counts as colour, in both splits
    assert data.test["image"][:, :, 0, 0].tolist() == [[3, 3, 3], [4, 2, 7]]
    assert [f.relative_to(root.resolve()).as_posix() for f in data.files] == [
        "train/b/1.png",
        "train/unlabeled/2.png",
        "test/a/3.png",
        "test/b/4.gif",
    ]


def test_bilevel_and_grey_with_alpha_stay_greyscale(tmp_path: Path) -> None:
    (tmp_path / "marks" / "a").mkdir(parents=True)
    Image.new("1", (4, 3), 1).save(tmp_path / "marks" / "a" / "one.png")
    Image.new("LA", (4, 3), (60, 0)).save(tmp_path / "marks" / "a" / "two.png")
    images = read_image_folder(tmp_path / "marks").train["image"]
    assert images.shape == (2, 3, 4) and images[:, 0, 0].tolist() == [255, 60]


def test_unlabelled_images_only(tmp_path: Path) -> None:
    image(tmp_path / "raw" / "unlabelled" / "a.png", 5)
    data = read_image_folder(tmp_path / "raw")
    assert data.classes == {"label": []} and data.train["label"].tolist() == [-1]


def _mistake(root: Path, case: str) -> None:
    """Lay out one user mistake under root."""
    if case == "sizes":
        image(root / "a" / "big.png", 1, size=(5, 3))
        image(root / "a" / "small.png", 1)
    elif case == "undecodable":
        image(root / "a" / "fine.png", 1)
        (root / "a" / "broken.png").write_bytes(b"not a png")
    elif case == "empty":
        root.mkdir()
        (root / "notes.txt").write_text("no images here")
    elif case == "loose":
        image(root / "a" / "fine.png", 1)
        image(root / "stray.png", 1)
    elif case == "test_only":
        image(root / "test" / "a" / "fine.png", 1)
    elif case == "split_and_class":
        image(root / "train" / "a" / "fine.png", 1)
        image(root / "cat" / "fine.png", 1)
    elif case == "split_and_image":
        image(root / "train" / "a" / "fine.png", 1)
        image(root / "stray.png", 1)
    elif case == "empty_class":
        image(root / "a" / "fine.png", 1)
        (root / "b").mkdir()
        (root / "b" / "x.tiff").write_bytes(b"")
    elif case == "nested":
        image(root / "a" / "deeper" / "fine.png", 1)
    elif case == "deep":
        (root / "a").mkdir(parents=True)
        Image.fromarray(np.full((3, 4), 1000, np.uint16)).save(root / "a" / "deep.png")
    elif case == "empty_test":
        image(root / "train" / "a" / "fine.png", 1)
        (root / "test").mkdir()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("sizes", ["small.png is 4x3 pixels", "big.png is 5x3", "resize every image to one size"]),
        ("undecodable", ["cannot decode image", "broken.png", "replace it"]),
        ("empty", ["holds no images", "one subfolder per class"]),
        ("loose", ["stray.png is not in a class folder", "move it into"]),
        ("test_only", ["test/ folder but no train/"]),
        ("split_and_class", ["train/ folder and also cat/", "goes inside them"]),
        ("split_and_image", ["train/ folder and also stray.png:", "train/stray.png"]),
        ("empty_class", ["class folder", "/b holds no images", "remove the folder"]),
        ("nested", ["deeper is a folder inside class folder", "move them up"]),
        ("deep", ["deep.png has I", "8 bits per channel"]),
        ("empty_test", ["test holds no images"]),
    ],
)
def test_image_folder_mistakes(tmp_path: Path, case: str, expected: list[str]) -> None:
    root = tmp_path / "folder"
    _mistake(root, case)
    with pytest.raises(DataError) as caught:
        open_dataset(str(root))
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)

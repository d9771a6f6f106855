"""Datasets for supervised learning on the chip; nothing is ever downloaded.

* `digits` (the default): scikit-learn's bundled copy of the UCI "Optical Recognition of
  Handwritten Digits" test set (Alpaydin & Kaynak 1998; `sklearn.datasets.load_digits`, shipped
  inside the scikit-learn package): 1,797 images of 8 x 8 pixels with 17 grey levels (0-16).
  Split once, the same for every run and seed: per class, a fixed permutation (numpy seed 0)
  puts round(20 %) of its images in the test set (1,438 training, 359 test images).
* `mnist`: MNIST (LeCun, Cortes, Burges) read from local files in `--data DIR`: the four
  standard IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`; also spelled `*.idx3-ubyte`, each
  optionally gzipped, `.gz`), or `mnist.npz` (Keras' layout: `x_train`, `y_train`, `x_test`,
  `y_test`); `--data` may also name the .npz file itself. Its own 60,000 / 10,000 split.

IDX (LeCun's format): a big-endian magic number -- two zero bytes, a type byte (0x08 =
unsigned byte) and the number of dimensions (1 for labels: magic 0x00000801; 3 for images:
0x00000803) --, one big-endian uint32 per dimension, then the data.

Images are kept as 8-bit codes (uint8, value = code / 255): they drive the first layer's DACs as
they are (`rlime.hw.layers.CodeInput`), and a minibatch read from memory is 8 bits a pixel.
Digits' grey levels v in 0..16 become codes round(255 v / 16).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlime.common.errors import ConfigError, lookup

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
IDX_UBYTE = 0x08
# (role, the accepted file names without .gz): train/test images/labels
MNIST_FILES = {
    "train_x": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_y": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_x": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_y": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
MNIST_NPZ = "mnist.npz"
NPZ_KEYS = {"train_x": "x_train", "train_y": "y_train", "test_x": "x_test", "test_y": "y_test"}


@dataclass(frozen=True)
class Dataset:
    """Training and test images (N, 1, H, W) as uint8 codes, labels (N,) int64."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    source: str
    split: str
    files: tuple[str, ...] = field(default=())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return Dataset(**{**self.__dict__, **moved})

    def protocol(self) -> dict[str, Any]:
        """What a result on this dataset depends on (config.toml's [protocol])."""
        return {"dataset": self.name, "source": self.source, "split": self.split,
                "train_images": len(self.train_y), "test_images": len(self.test_y),
                "image_shape": list(self.input_shape), "classes": self.classes,
                "encoding": "8-bit codes, value = code / 255"}


def load_dataset(name: str, data: str = "") -> Dataset:
    """The named dataset (`DATASETS`); `data`: where its files are (MNIST only)."""
    return lookup(DATASETS, name, "dataset")(data)


def _digits(data: str) -> Dataset:
    if data:
        raise ConfigError(f"run.data = {data!r} is not allowed for the digits dataset: it is "
                          f"bundled with scikit-learn (leave --data out)")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("the digits dataset needs scikit-learn, which is not installed: "
                          "pip install scikit-learn (a dependency of rlime: pip install -e .)") from None
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    test = _stratified_test(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return Dataset("digits", *_tensors(images[train], labels[train], images[test], labels[test]),
                   classes=10,
                   source="scikit-learn load_digits (UCI optical recognition of handwritten "
                          "digits, Alpaydin & Kaynak 1998)",
                   split=f"stratified: round({DIGITS_TEST_FRACTION:g} x each class) to test, "
                         f"numpy seed {DIGITS_SPLIT_SEED}")


def _stratified_test(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of the test set: per class, the first round(fraction x count) of a permutation."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        picked.append(members[:int(round(fraction * len(members)))])
    return np.sort(np.concatenate(picked))


def _tensors(*arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.array(a, copy=True, order="C")) for a in arrays)


def _mnist(data: str) -> Dataset:
    if not data:
        raise ConfigError("the mnist dataset is read from local files, never downloaded: give "
                          "--data DIR, a directory holding the four IDX files "
                          f"({', '.join(names[0] for names in MNIST_FILES.values())}, each "
                          f"optionally .gz) or {MNIST_NPZ}, or the path of an .npz file")
    path = Path(data).expanduser()
    if path.is_file() and path.suffix == ".npz":
        arrays, files = _read_npz(path), (str(path),)
    elif not path.is_dir():
        raise ConfigError(f"run.data = {data!r}: no such directory (or .npz file); give the "
                          f"directory holding the MNIST files")
    elif (path / MNIST_NPZ).is_file() and not any(_find(path, n) for n in MNIST_FILES.values()):
        arrays, files = _read_npz(path / MNIST_NPZ), (str(path / MNIST_NPZ),)
    else:
        found = {role: _find(path, names) for role, names in MNIST_FILES.items()}
        missing = [role for role, file in found.items() if file is None]
        if missing:
            raise ConfigError(
                f"run.data = {data!r}: MNIST file(s) missing: "
                + "; ".join(f"{' or '.join(MNIST_FILES[r])} (optionally .gz)" for r in missing)
                + f". The directory must hold all four IDX files "
                  f"({', '.join(names[0] for names in MNIST_FILES.values())}) or {MNIST_NPZ}")
        arrays = {role: read_idx(file) for role, file in found.items()}
        files = tuple(str(found[role]) for role in MNIST_FILES)
    _check_mnist(arrays, data)
    return Dataset("mnist", *_tensors(arrays["train_x"][:, None], arrays["train_y"].astype(np.int64),
                                      arrays["test_x"][:, None], arrays["test_y"].astype(np.int64)),
                   classes=10, source="MNIST (LeCun, Cortes, Burges), local files",
                   split="MNIST's own training / test sets", files=files)


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file of unsigned bytes (optionally gzipped) as a uint8 array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"{path} is not an IDX file (its magic number must start with two "
                          f"zero bytes, e.g. 0x00000803 for images, 0x00000801 for labels)")
    kind, ndim = raw[2], raw[3]
    if kind != IDX_UBYTE:
        raise ConfigError(f"{path}: IDX type 0x{kind:02x} is not supported; MNIST's files hold "
                          f"unsigned bytes (0x08)")
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ConfigError(f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ConfigError(f"{path}: IDX header says {' x '.join(map(str, shape))} = {size:,} "
                          f"bytes, the file holds {len(raw) - header:,}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {role: np.asarray(f[key]) for role, key in NPZ_KEYS.items() if key in f.files}
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot be read as .npz ({err})") from None
    missing = [key for role, key in NPZ_KEYS.items() if role not in arrays]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; an MNIST .npz holds "
                          f"{', '.join(NPZ_KEYS.values())}")
    return arrays


def _check_mnist(arrays: dict[str, np.ndarray], data: str) -> None:
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise ConfigError(f"run.data = {data!r}: the {part} set has images of shape "
                              f"{x.shape} and labels of shape {y.shape}; expected (N, H, W) "
                              f"images and N labels")
        if x.dtype != np.uint8 or y.min() < 0 or y.max() > 9:
            raise ConfigError(f"run.data = {data!r}: the {part} set must hold uint8 images and "
                              f"labels 0-9")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise ConfigError(f"run.data = {data!r}: training and test images differ in size")


DATASETS = {"digits": _digits, "mnist": _mnist}

"""NYU Depth v2, labeled subset, as released (Silberman et al. 2012; PROTOCOLS.md s.6).

Files:

* ``nyu_depth_v2_labeled.mat``: MATLAB v7.3, i.e. HDF5, read with h5py. MATLAB stores
  arrays column-major, so h5py sees every dimension reversed: ``images`` is
  ``uint8 (1449, 3, 640, 480)`` for MATLAB's 480x640x3x1449 and ``depths`` is
  ``float32 (1449, 640, 480)`` (metres). A frame is recovered by *transposing* the axes
  back (``(W, H) -> (H, W)``); reshaping to ``(480, 640)`` instead scrambles the pixels,
  a mistake some public loaders make (evaluation-anchors s.2.5).
* ``splits.mat``: MATLAB v5 (scipy), ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based
  indices into the 1,449 frames.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import h5py
import numpy as np
import scipy.io

__all__ = ["OFFICIAL_SIZES", "read_nyu_splits", "NYUDepthLabeled", "find_nyu_files", "write_nyu_labeled",
           "write_nyu_splits"]

OFFICIAL_SIZES = {"frames": 1449, "train": 795, "test": 654}
MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"


def find_nyu_files(root: str) -> Tuple[str, str]:
    """``(labeled .mat, splits.mat)`` in ``root`` or ``root/nyu_depth_v2``.

    Raises:
        FileNotFoundError: naming both files and the folders tried.
    """
    for d in (root, os.path.join(root, "nyu_depth_v2"), os.path.join(root, "nyuv2")):
        mat, splits = os.path.join(d, MAT_NAME), os.path.join(d, SPLITS_NAME)
        if os.path.isfile(mat) and os.path.isfile(splits):
            return mat, splits
    raise FileNotFoundError(f"NYU Depth v2 not found: expected {MAT_NAME} and {SPLITS_NAME} in "
                            f"{os.path.abspath(root)} or its nyu_depth_v2/ subfolder")


def read_nyu_splits(path: str, num_frames: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """0-based ``(train, test)`` frame indices from ``splits.mat`` (1-based ``trainNdxs`` / ``testNdxs``).

    Raises:
        KeyError: a variable is missing. ValueError: indices out of range or in both splits.
    """
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{path}: not a readable MATLAB v5 file ({e})") from None
    out = []
    for key in ("trainNdxs", "testNdxs"):
        if key not in mat:
            raise KeyError(f"{path}: no '{key}' (variables: {sorted(k for k in mat if not k.startswith('__'))})")
        idx = np.asarray(mat[key]).reshape(-1).astype(np.int64) - 1  # MATLAB is 1-based
        if idx.size and (idx.min() < 0 or (num_frames is not None and idx.max() >= num_frames)):
            raise ValueError(f"{path}: {key} has indices outside 1..{num_frames}")
        out.append(idx)
    if np.intersect1d(out[0], out[1]).size:
        raise ValueError(f"{path}: {np.intersect1d(out[0], out[1]).size} frames are in both trainNdxs and testNdxs")
    return out[0], out[1]


class NYUDepthLabeled:
    """Lazy frame access to ``nyu_depth_v2_labeled.mat`` (the HDF5 file opens on first use,
    so the object can be sent to DataLoader workers before any handle exists).

    ``frame(i)`` returns ``(rgb uint8 [480, 640, 3], depth float32 [480, 640] metres)``.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"NYU labeled file not found: {path}")
        self.path = path
        self._h5 = None
        with h5py.File(path, "r") as f:  # validate once, eagerly: a bad file fails at start-up
            for key in ("images", "depths"):
                if key not in f:
                    raise KeyError(f"{path}: no '{key}' dataset (has {sorted(f.keys())}); expected the NYU Depth "
                                   f"v2 labeled .mat (MATLAB v7.3)")
            images, depths = f["images"].shape, f["depths"].shape
        if len(images) != 4 or images[1] != 3 or len(depths) != 3 or images[0] != depths[0] \
                or images[2:] != depths[1:]:
            raise ValueError(f"{path}: images {images} / depths {depths} are not (N, 3, W, H) / (N, W, H) as h5py "
                             f"reads MATLAB's (H, W, 3, N) / (H, W, N)")
        self.num_frames = images[0]
        self.height, self.width = images[3], images[2]

    def __len__(self) -> int:
        return self.num_frames

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None  # h5py handles do not pickle; each worker opens its own
        return state

    def frame(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        rgb = np.ascontiguousarray(self._h5["images"][index].transpose(2, 1, 0))  # (3, W, H) -> (H, W, 3)
        depth = np.ascontiguousarray(self._h5["depths"][index].transpose(1, 0)).astype(np.float32)  # (W, H) -> (H, W)
        return rgb, depth


def write_nyu_labeled(path: str, rgb: np.ndarray, depth: np.ndarray) -> None:
    """Write frames in the labeled file's layout (for small stand-in sets built from other data).

    Args:
        rgb: ``uint8 [N, H, W, 3]``; depth: ``float32 [N, H, W]`` metres (0 = no measurement).

    The arrays are stored as MATLAB v7.3 does, i.e. axes reversed (``images (N, 3, W, H)``,
    ``depths (N, W, H)``), in an HDF5 file with MATLAB's 512-byte header block.
    """
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or depth.shape != rgb.shape[:3]:
        raise ValueError(f"rgb {rgb.shape} / depth {depth.shape}: expected [N, H, W, 3] / [N, H, W]")
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=np.ascontiguousarray(rgb.astype(np.uint8).transpose(0, 3, 2, 1)))
        f.create_dataset("depths", data=np.ascontiguousarray(depth.astype(np.float32).transpose(0, 2, 1)))
    header = b"MATLAB 7.3 MAT-file, written by ssl_zoo. HDF5 schema 1.00 .".ljust(116) + b"\0" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header)


def write_nyu_splits(path: str, train: np.ndarray, test: np.ndarray) -> None:
    """``splits.mat`` (MATLAB v5) with 1-based column vectors ``trainNdxs`` / ``testNdxs`` from 0-based indices."""
    scipy.io.savemat(path, {"trainNdxs": (np.asarray(train) + 1).reshape(-1, 1).astype(np.float64),
                            "testNdxs": (np.asarray(test) + 1).reshape(-1, 1).astype(np.float64)})

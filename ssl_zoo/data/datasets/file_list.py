"""Images listed in a text file of ``<path> [<label>]`` lines (file-backed; ``build_dataset``
takes the path of such a ``.txt`` file directly)."""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Tuple

from ssl_zoo.data.datasets.base import FileImageDataset

__all__ = ["FileListDataset", "read_file_list"]


def read_file_list(list_file: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """Parse ``<path> [<label>]`` lines (blank lines and ``#`` comments skipped).

    The label is the last whitespace-separated token, so paths may contain spaces when a
    label is given. Labels are all integers (class ids, ``classes = ["0", ..., str(max)]``)
    or all names (ids by sorted name, as ImageFolder); a line without a label is unlabeled
    (target -1), which only an unlabeled list may do.

    Returns:
        (samples: list of (path as written, target), classes).

    Raises:
        ValueError: naming ``file:line`` for a malformed or inconsistent line.
    """
    rows: List[Tuple[str, Optional[str], int]] = []
    with open(list_file, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            rows.append((parts[0], parts[1] if len(parts) == 2 else None, n))
    if not rows:
        raise ValueError(f"{list_file}: no samples")
    labelled = [r for r in rows if r[1] is not None]
    if labelled and len(labelled) != len(rows):
        n = next(r[2] for r in rows if r[1] is None)
        raise ValueError(f"{list_file}:{n}: line without a label in a labelled list (expected '<path> <label>')")
    if not labelled:
        return [(p, -1) for p, _, _ in rows], []
    is_int = [lab.lstrip("-").isdigit() for _, lab, _ in rows]
    if all(is_int):
        ids = [int(lab) for _, lab, _ in rows]
        bad = next((r for r, i in zip(rows, ids) if i < 0), None)
        if bad:
            raise ValueError(f"{list_file}:{bad[2]}: negative label {bad[1]}")
        return [(p, i) for (p, _, _), i in zip(rows, ids)], [str(c) for c in range(max(ids) + 1)]
    if any(is_int):
        n = rows[is_int.index(not is_int[0])][2]  # first line of the other kind
        raise ValueError(f"{list_file}:{n}: mixes integer labels and class names")
    classes = sorted({lab for _, lab, _ in rows})
    cls_id = {c: i for i, c in enumerate(classes)}
    return [(p, cls_id[lab]) for p, lab, _ in rows], classes


class FileListDataset(FileImageDataset):
    """Images listed in a text file of ``<path> [<label>]`` lines (see :func:`read_file_list`).

    Args:
        list_file: the text file.
        root: folder the listed paths are relative to (absolute paths are kept); default:
            the list file's folder.
        transform: callable applied to the RGB PIL image.
        corrupt_policy: "fail" or "skip" (see :class:`FileImageDataset`); a listed file that
            does not exist counts as unreadable.
        num_check_threads: threads for the "skip" scan.

    ``dataset[i] -> (transform(PIL image), target)``; target -1 for an unlabeled list.
    """

    def __init__(self, list_file: str, root: Optional[str] = None, transform: Optional[Callable] = None,
                 corrupt_policy: str = "fail", num_check_threads: Optional[int] = None) -> None:
        if not os.path.isfile(list_file):
            raise FileNotFoundError(f"File list not found: {os.path.abspath(list_file)}")
        self.list_file = os.path.abspath(list_file)
        self.root = os.path.abspath(root) if root else os.path.dirname(self.list_file)
        samples, self.classes = read_file_list(list_file)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self._set_samples([(os.path.join(self.root, p), t) for p, t in samples])
        self.transform = transform
        self._apply_corrupt_policy(corrupt_policy, num_check_threads)

    def __repr__(self) -> str:
        return f"FileListDataset({self.list_file}, root={self.root}, n={len(self)}, classes={len(self.classes)})"

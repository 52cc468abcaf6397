"""Datasets: base classes (``base.py``), in-memory decoding (``in_memory.py``), file lists,
unlabeled folders (``unlabeled_folder.py``), STL-10, and the built-in names (``builtin.py``:
registered in :mod:`ssl_zoo.data.catalog` when :mod:`ssl_zoo.data` is imported)."""
from .base import (CORRUPT_POLICIES, FileImageDataset, ImageFolderDataset, InMemoryImageDataset,
                   UnreadableImageError, corrupt_summary)
from .file_list import FileListDataset, read_file_list
from .in_memory import BUILTIN_ZIP, load_builtin_cifar10, load_image_folder_in_memory
from .stl10 import read_stl10_binary
from .unlabeled_folder import FOLDER_LABELS, UnlabeledFolderDataset, find_images, folder_layout

__all__ = ["CORRUPT_POLICIES", "FileImageDataset", "ImageFolderDataset", "InMemoryImageDataset", "UnreadableImageError",
           "corrupt_summary", "FileListDataset", "read_file_list", "BUILTIN_ZIP", "load_builtin_cifar10",
           "load_image_folder_in_memory", "read_stl10_binary", "FOLDER_LABELS", "UnlabeledFolderDataset",
           "find_images", "folder_layout"]

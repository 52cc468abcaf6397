"""NYU Depth v2 labeled reader: the HDF5 (MATLAB v7.3) file written here with raw h5py in MATLAB's
column-major layout, and the official ``splits.mat`` (MATLAB v5, 1-based) with scipy."""
import h5py
import numpy as np
import pytest
import scipy.io

from ssl_zoo.data.readers import nyu_depth as N


def _frames(n=3, h=5, w=7):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 10, (n, h, w)).astype(np.float32)
    return rgb, depth


def _write_like_matlab(path, rgb, depth):
    """MATLAB stores images as H x W x 3 x N column-major; HDF5 (and h5py) see (N, 3, W, H)."""
    with h5py.File(path, "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)
        f["depths"] = depth.transpose(0, 2, 1)
        f["labels"] = np.zeros((rgb.shape[0], rgb.shape[2], rgb.shape[1]), np.uint16)


def test_frames_come_back_by_transposing(tmp_path):
    rgb, depth = _frames()
    _write_like_matlab(tmp_path / "nyu.mat", rgb, depth)
    reader = N.NYUDepthLabeled(str(tmp_path / "nyu.mat"))
    assert len(reader) == 3 and (reader.height, reader.width) == (5, 7)
    for i in range(3):
        got_rgb, got_depth = reader.frame(i)
        np.testing.assert_array_equal(got_rgb, rgb[i])
        np.testing.assert_array_equal(got_depth, depth[i])
    # the mistake the docstring warns about: a reshape of the stored (3, W, H) block is not the image
    with h5py.File(tmp_path / "nyu.mat", "r") as f:
        assert not np.array_equal(f["images"][0].reshape(5, 7, 3), rgb[0])


def test_reader_pickles_without_an_open_handle(tmp_path):
    import pickle

    rgb, depth = _frames()
    _write_like_matlab(tmp_path / "nyu.mat", rgb, depth)
    reader = N.NYUDepthLabeled(str(tmp_path / "nyu.mat"))
    reader.frame(0)
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.frame(2)[0], rgb[2])


def test_writer_round_trip_and_matlab_header(tmp_path):
    rgb, depth = _frames(2, 4, 6)
    N.write_nyu_labeled(str(tmp_path / "w.mat"), rgb, depth)
    assert open(tmp_path / "w.mat", "rb").read(10) == b"MATLAB 7.3"
    with h5py.File(tmp_path / "w.mat", "r") as f:
        assert f["images"].shape == (2, 3, 6, 4) and f["depths"].shape == (2, 6, 4)
    got = N.NYUDepthLabeled(str(tmp_path / "w.mat")).frame(1)
    np.testing.assert_array_equal(got[0], rgb[1])
    np.testing.assert_array_equal(got[1], depth[1])


def test_splits_are_one_based_in_the_file(tmp_path):
    scipy.io.savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [3]], float),
                                               "testNdxs": np.array([[2]], float)})
    train, test = N.read_nyu_splits(str(tmp_path / "splits.mat"), num_frames=3)
    assert train.tolist() == [0, 2] and test.tolist() == [1]
    N.write_nyu_splits(str(tmp_path / "s2.mat"), np.array([0, 2]), np.array([1]))
    assert scipy.io.loadmat(tmp_path / "s2.mat")["trainNdxs"].ravel().tolist() == [1, 3]


def test_bad_files_are_clear_errors(tmp_path):
    scipy.io.savemat(tmp_path / "s.mat", {"trainNdxs": np.array([[1], [2]]), "testNdxs": np.array([[2]])})
    with pytest.raises(ValueError, match="in both"):
        N.read_nyu_splits(str(tmp_path / "s.mat"))
    scipy.io.savemat(tmp_path / "s.mat", {"trainNdxs": np.array([[1], [9]]), "testNdxs": np.array([[2]])})
    with pytest.raises(ValueError, match="outside 1..3"):
        N.read_nyu_splits(str(tmp_path / "s.mat"), num_frames=3)
    scipy.io.savemat(tmp_path / "s.mat", {"trainNdxs": np.array([[1]])})
    with pytest.raises(KeyError, match="testNdxs"):
        N.read_nyu_splits(str(tmp_path / "s.mat"))
    with h5py.File(tmp_path / "x.mat", "w") as f:
        f["images"] = np.zeros((1, 3, 4, 2), np.uint8)
    with pytest.raises(KeyError, match="depths"):
        N.NYUDepthLabeled(str(tmp_path / "x.mat"))
    with pytest.raises(FileNotFoundError, match="nyu_depth_v2_labeled.mat and splits.mat"):
        N.find_nyu_files(str(tmp_path))

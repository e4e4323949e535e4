"""gmg.datasets: official-format loaders on small files written here in exactly the official formats, corrupt and
missing files, the procedural renderers' properties, the on-disk cache, and the `datasets` DVC stage wiring."""
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from gmg import datasets as D

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------------------
# Writers for the official formats (independent of the library's readers)

def grid_rows(sizes):
    "All class tuples of a grid in row-major order, `(prod(sizes), k)`."
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def write_dsprites(path: Path, sizes=(3, 2, 2, 2, 3), shuffle=False, compressed=True, rng=0):
    "An .npz like dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz on a reduced grid; returns (classes, imgs)."
    g = np.random.default_rng(rng)
    classes = grid_rows(sizes)
    imgs = (g.random((len(classes), 64, 64)) < 0.3).astype(np.uint8)
    latents_classes = np.column_stack([np.zeros(len(classes), np.int64), classes])
    scale = np.linspace(0.5, 1, 6)[: sizes[1]]
    orient = np.linspace(0, 2 * np.pi, 40)[: sizes[2]]
    pos_x, pos_y = np.linspace(0, 1, 32)[: sizes[3]], np.linspace(0, 1, 32)[: sizes[4]]
    latents_values = np.column_stack([np.ones(len(classes)), classes[:, 0] + 1.0, scale[classes[:, 1]],
                                      orient[classes[:, 2]], pos_x[classes[:, 3]], pos_y[classes[:, 4]]])
    perm = g.permutation(len(classes)) if shuffle else np.arange(len(classes))
    save = np.savez_compressed if compressed else np.savez
    save(path, imgs=imgs[perm], latents_classes=latents_classes[perm], latents_values=latents_values[perm])
    return classes, imgs


def write_shapes3d(path: Path, sizes=(2, 2, 2, 2, 2, 3), rng=0):
    import h5py
    g = np.random.default_rng(rng)
    classes = grid_rows(sizes)
    hues = np.arange(10) / 10
    values = [hues, hues, hues, np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]
    labels = np.column_stack([values[j][classes[:, j]] for j in range(6)])
    images = g.integers(0, 256, (len(classes), 64, 64, 3), dtype=np.uint8)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=images, chunks=(1, 64, 64, 3))
        fh.create_dataset("labels", data=labels)
    return classes, images


NORB_MAGIC = {np.dtype(np.uint8): 0x1E3D4C55, np.dtype(np.int32): 0x1E3D4C54}


def write_norb_matrix(path: Path, array: np.ndarray):
    "SmallNORB binary matrix: magic, rank, max(3, rank) dims (padded with 1), little-endian data."
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([NORB_MAGIC[array.dtype], array.ndim, *dims], "<i4")
    with open(path, "wb") as fh:
        fh.write(header.tobytes())
        fh.write(array.astype(array.dtype.newbyteorder("<")).tobytes())


def write_smallnorb(root: Path, cats=2, elevs=2, azims=2, lights=2, instances=((4, 6), (0, 1))):
    """Both -training- and -testing- triples; every image is constant, its value encoding (combination, instance).
    Returns {(cat, elev, azim, light, instance): value}."""
    values = {}
    for prefix, insts in zip(D.SMALLNORB_PREFIXES, instances):
        rows = [(c, i, e, 2 * a, l) for c in range(cats) for i in insts for e in range(elevs)
                for a in range(azims) for l in range(lights)]
        rows = [rows[k] for k in np.random.default_rng(len(values)).permutation(len(rows))]  # files are not sorted
        dat = np.zeros((len(rows), 2, 96, 96), np.uint8)
        for k, (c, i, e, a, l) in enumerate(rows):
            v = 7 * (((c * elevs + e) * azims + a // 2) * lights + l) + i % 7 + 1
            values[(c, e, a // 2, l, i)] = v
            dat[k, 0], dat[k, 1] = v, 255 - v  # camera 1 differs: the loader must use camera 0
        write_norb_matrix(root / f"{prefix}-dat.mat", dat)
        write_norb_matrix(root / f"{prefix}-cat.mat", np.array([r[0] for r in rows], np.int32))
        write_norb_matrix(root / f"{prefix}-info.mat", np.array([[i, e, a, l] for _, i, e, a, l in rows], np.int32))
    return values


def write_cars3d(root: Path, n_cars=3):
    "Per-car .mat files with 'im' (128, 128, 3, 24, 4) uint8; view (e, a) of car c is constant (e*24+a, 50*c, 9)."
    from scipy.io import savemat
    root.mkdir(parents=True, exist_ok=True)
    for c in range(n_cars):
        im = np.zeros((128, 128, 3, 24, 4), np.uint8)
        for e, a in itertools.product(range(4), range(24)):
            im[:, :, :, a, e] = (e * 24 + a, 50 * c, 9)
        savemat(root / f"car_{c + 1:03d}_mesh.mat", {"im": im})


# ---------------------------------------------------------------------------------------------------------------
# dSprites

@pytest.mark.parametrize("shuffle,compressed", [(False, True), (True, False)])
def test_dsprites_official_reads_every_image_in_official_order(tmp_path, shuffle, compressed):
    classes, imgs = write_dsprites(tmp_path / D.DSPRITES_FILE, shuffle=shuffle, compressed=compressed)
    ds = D.load("dsprites", "official", root=tmp_path, strict=False)
    assert (ds.name, ds.source, ds.factor_sizes) == ("dsprites", "official", (3, 2, 2, 2, 3))
    np.testing.assert_array_equal(ds.index_to_factors(torch.arange(len(ds))).numpy(), classes)
    np.testing.assert_array_equal(ds.render(classes)[:, 0].numpy(), imgs.astype(np.float32))
    np.testing.assert_allclose(ds.factor_values[1], [0.5, 0.6])
    np.testing.assert_allclose(ds.factor_values[0], [1, 2, 3])


def test_dsprites_strict_rejects_reduced_grid(tmp_path):
    write_dsprites(tmp_path / D.DSPRITES_FILE)
    with pytest.raises(ValueError, match=r"official \(3, 6, 40, 32, 32\)"):
        D.load("dsprites", "official", root=tmp_path)


def test_dsprites_missing_names_path_file_and_origin(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        D.load("dsprites", "official", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and D.DSPRITES_FILE in msg and "deepmind/dsprites-dataset" in msg


@pytest.mark.parametrize("damage", ["truncate", "garbage", "drop_row", "missing_key"])
def test_dsprites_corrupt_file_is_rejected_with_path(tmp_path, damage):
    path = tmp_path / D.DSPRITES_FILE
    write_dsprites(path, compressed=False)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file" * 100)
    elif damage == "drop_row":
        with np.load(path) as z:
            np.savez(path, **{k: z[k][1:] for k in z.files})
    else:
        with np.load(path) as z:
            np.savez(path, imgs=z["imgs"], latents_values=z["latents_values"])
    with pytest.raises(ValueError) as e:
        D.load("dsprites", "official", root=tmp_path, strict=False)
    assert str(path) in str(e.value) and "dsprites-dataset" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Shapes3D

def test_shapes3d_official_reads_every_image(tmp_path):
    classes, images = write_shapes3d(tmp_path / D.SHAPES3D_FILE)
    ds = D.load("shapes3d", "official", root=tmp_path, strict=False)
    assert ds.factor_sizes == (2, 2, 2, 2, 2, 3)
    order = np.random.default_rng(1).permutation(len(classes))  # random, with a repeat: h5py needs sorted rows
    order = np.append(order, order[0])
    got = ds.render(classes[order]).numpy()
    np.testing.assert_allclose(got, images[order].transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    np.testing.assert_allclose(ds.factor_values[5], [-30, -25.714285714, -21.428571428], atol=1e-6)


def test_shapes3d_official_survives_pickling_for_dataloader_workers(tmp_path):
    import pickle
    write_shapes3d(tmp_path / D.SHAPES3D_FILE)
    ds = D.load("shapes3d", "official", root=tmp_path, strict=False)
    first = ds[5][0]
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[5][0], first)


@pytest.mark.parametrize("damage", ["truncate", "wrong_shape", "missing"])
def test_shapes3d_bad_files(tmp_path, damage):
    import h5py
    path = tmp_path / D.SHAPES3D_FILE
    if damage == "truncate":
        write_shapes3d(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "wrong_shape":
        with h5py.File(path, "w") as fh:
            fh["images"] = np.zeros((4, 32, 32, 3), np.uint8)
            fh["labels"] = np.zeros((4, 6))
    err = FileNotFoundError if damage == "missing" else ValueError
    with pytest.raises(err) as e:
        D.load("shapes3d", "official", root=tmp_path, strict=False)
    assert str(path) in str(e.value) and "3dshapes.h5" in str(e.value) and "3d-shapes" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# SmallNORB

def test_norb_matrix_reader_round_trip(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(6, 4)
    write_norb_matrix(tmp_path / "m.mat", a)
    np.testing.assert_array_equal(D.read_norb_matrix(tmp_path / "m.mat"), a)
    b = np.arange(5, dtype=np.int32)  # rank 1: three dims stored, two of them padding
    write_norb_matrix(tmp_path / "v.mat", b)
    np.testing.assert_array_equal(D.read_norb_matrix(tmp_path / "v.mat"), b)


def test_smallnorb_official_camera0_resized_and_instances_as_nuisance(tmp_path):
    values = write_smallnorb(tmp_path)
    ds = D.load("smallnorb", "official", root=tmp_path, strict=False)
    assert (ds.name, ds.factor_sizes, ds.nuisance_size) == ("smallnorb", (2, 2, 2, 2), 4)
    np.testing.assert_allclose(ds.factor_values[1], [30, 35])
    np.testing.assert_allclose(ds.factor_values[2], [0, 20])
    for combo in grid_rows(ds.factor_sizes):
        expected = [values[(*combo, i)] for i in (0, 1, 4, 6)]  # nuisance k = k-th instance in sorted order
        got = [ds._render(combo[None], np.array([k]))[0, 0] for k in range(4)]
        for g, v in zip(got, expected):
            torch.testing.assert_close(g, torch.full((64, 64), v / 255.0))
    # with an rng the instance is drawn at random: all four appear, and the same seed repeats the draw
    f = np.repeat(grid_rows(ds.factor_sizes)[:1], 64, axis=0)
    a = ds.render(f, np.random.default_rng(3))
    assert len(torch.unique(a[:, 0, 0, 0])) == 4
    torch.testing.assert_close(ds.render(f, np.random.default_rng(3)), a)


@pytest.mark.parametrize("damage", ["truncate_dat", "bad_magic", "missing_info", "uneven"])
def test_smallnorb_bad_files(tmp_path, damage):
    write_smallnorb(tmp_path)
    prefix = D.SMALLNORB_PREFIXES[1]
    dat, info = tmp_path / f"{prefix}-dat.mat", tmp_path / f"{prefix}-info.mat"
    if damage == "truncate_dat":
        dat.write_bytes(dat.read_bytes()[:-100])
        target = dat
    elif damage == "bad_magic":
        info.write_bytes(b"\x00\x00\x00\x00" + info.read_bytes()[4:])
        target = info
    elif damage == "missing_info":
        info.unlink()
        target = info
    else:  # one instance fewer in the testing file: combinations no longer have equal counts
        write_smallnorb(tmp_path, instances=((4, 6), (0, 1)))
        rows = D.read_norb_matrix(info)
        keep = np.flatnonzero(~((rows[:, 0] == 1) & (rows[:, 1] == 0)))
        for part, arr in [("dat", D.read_norb_matrix(dat)), ("cat", D.read_norb_matrix(tmp_path / f"{prefix}-cat.mat")),
                          ("info", rows)]:
            write_norb_matrix(tmp_path / f"{prefix}-{part}.mat", np.ascontiguousarray(arr[keep]))
        target = tmp_path
    err = FileNotFoundError if damage == "missing_info" else ValueError
    with pytest.raises(err) as e:
        D.load("smallnorb", "official", root=tmp_path, strict=False)
    assert str(target).split("-info")[0].split("-dat")[0] in str(e.value) and "norb-v1.0-small" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Cars3D

def test_cars3d_official_order_and_resize(tmp_path):
    write_cars3d(tmp_path, n_cars=3)
    ds = D.load("cars3d", "official", root=tmp_path, strict=False)
    assert (ds.name, ds.factor_sizes) == ("cars3d", (4, 24, 3))
    f = grid_rows(ds.factor_sizes)
    x = ds.render(f)
    expected = np.stack([f[:, 0] * 24 + f[:, 1], 50 * f[:, 2], np.full(len(f), 9)], 1) / 255.0
    np.testing.assert_allclose(x.numpy(), np.broadcast_to(expected[:, :, None, None], x.shape), atol=1e-6)
    with pytest.raises(ValueError, match="183"):
        D.load("cars3d", "official", root=tmp_path)


def test_cars3d_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nips2015-analogy-data"):
        D.load("cars3d", "official", root=tmp_path / "nowhere")
    write_cars3d(tmp_path, n_cars=2)
    bad = tmp_path / "car_002_mesh.mat"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(ValueError) as e:
        D.load("cars3d", "official", root=tmp_path, strict=False)
    assert str(bad) in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Procedural renderers: properties

SIZES = {"dsprites": (3, 6, 40, 32, 32), "shapes3d": (10, 10, 10, 8, 4, 15), "smallnorb": (5, 9, 18, 6),
         "cars3d": (4, 24, 183)}


@pytest.mark.parametrize("name", D.DATASETS)
def test_procedural_properties(name):
    ds = D.load(name)
    assert ds.factor_sizes == SIZES[name] and len(ds) == np.prod(SIZES[name])
    assert ds.name == (name + "-like" if name in ("smallnorb", "cars3d") else name)
    g = np.random.default_rng(7)
    idx = torch.from_numpy(g.integers(0, len(ds), 20))
    torch.testing.assert_close(ds.factors_to_index(ds.index_to_factors(idx)), idx)
    f = ds.sample_factors(10, g)
    x = ds.render(f)
    assert x.shape == (10, ds.n_channels, 64, 64) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(ds.render(f), x, rtol=0, atol=0)
    for j in range(len(ds.factor_sizes)):
        assert D.changed_fraction(ds, j, 8, g) >= 0.75, ds.factor_names[j]


def test_sample_factors_is_uniform_and_seeded():
    ds = D.load("shapes3d")
    a = ds.sample_factors(20000, 0)
    torch.testing.assert_close(ds.sample_factors(20000, 0), a)
    counts = np.bincount(a[:, 5].numpy(), minlength=15)
    assert counts.min() > 0.8 * 20000 / 15 and counts.max() < 1.2 * 20000 / 15


def test_dsprites_every_sprite_inside_the_canvas():
    ds = D.load("dsprites")
    f = ds.sample_factors(200, 0)
    f[:100, 3:] = torch.tensor([0, 31])  # extreme corners
    f[100:, 3:] = torch.tensor([31, 0])
    moved = f.clone()
    moved[:, 3:] = 16
    area = ds.render(f).sum(dim=(1, 2, 3))
    torch.testing.assert_close(area, ds.render(moved).sum(dim=(1, 2, 3)))  # nothing was clipped
    assert (area > 0).all()


def test_dsprites_orientation_0_and_2pi_coincide_and_neighbours_differ():
    ds = D.load("dsprites")
    f = ds.sample_factors(50, 1)
    f0, f39, f1 = f.clone(), f.clone(), f.clone()
    f0[:, 2], f39[:, 2], f1[:, 2] = 0, 39, 1
    torch.testing.assert_close(ds.render(f0), ds.render(f39))
    assert ((ds.render(f0) - ds.render(f1)).abs().flatten(1).amax(1) > 0).all()


def test_bad_factors_and_rng():
    ds = D.load("dsprites")
    with pytest.raises(ValueError, match="posX"):
        ds.render(torch.tensor([[0, 0, 0, 32, 0]]))
    with pytest.raises(ValueError, match="integers"):
        ds.render(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="rng"):
        ds.sample_factors(3, "seed")
    with pytest.raises(ValueError, match="index"):
        ds.index_to_factors([len(ds)])


def test_cache_round_trip_and_stale_file_ignored(tmp_path):
    ds = D.load("dsprites", cache_dir=tmp_path).build_cache()
    assert ds.cache_path.is_file() and ds.cache_complete
    again = D.load("dsprites", cache_dir=tmp_path)
    assert again.cache_complete
    f = ds.sample_factors(16, 0)
    torch.testing.assert_close(again.render(f), ds.render(f))
    ds.cache_path.write_bytes(b"garbage")  # a corrupt cache is rebuilt, never trusted
    fresh = D.load("dsprites", cache_dir=tmp_path)
    assert not fresh.cache_complete
    torch.testing.assert_close(fresh.render(f), ds.render(f))
    assert not list(tmp_path.glob("*.tmp"))


def test_dataloader_batches():
    ds = D.load("cars3d")
    loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=range(0, len(ds), 997))
    x, f = next(iter(loader))
    assert x.shape == (8, 3, 64, 64) and f.shape == (8, 3)
    torch.testing.assert_close(f, ds.index_to_factors(torch.arange(0, 8 * 997, 997)))

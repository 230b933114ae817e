"""Tests for training/checkpoint.py: our format's round trip and errors, official-layout pickles, malicious pickles."""

import os
import pickle
import random
import sys

import numpy as np
import pytest
import torch

from tests._official_pickles import dumps, official_records
from training import checkpoint
from training.checkpoint import (
    copy_params_and_buffers,
    load_checkpoint,
    load_networks,
    load_training_state,
    read_official_pickle,
    save_checkpoint,
    store_init_kwargs,
)
from training.networks_stylegan2 import Discriminator, Generator, SynthesisLayer

G_KWARGS = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=256))
D_KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, conv_clamp=256,
                epilogue_kwargs=dict(mbstd_group_size=2))


# Non-trivial values everywhere (the init leaves biases, noise strengths and w_avg at constants).
def _randomize(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers()]:
            if "resample_filter" not in name:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)
    return net


def _outputs(G, D, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, G.z_dim, generator=gen)
    c = torch.randn(4, G.c_dim, generator=gen)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        return img, D(img, c)


@pytest.fixture
def nets():
    G = _randomize(Generator(**G_KWARGS), 1)
    D = _randomize(Discriminator(**D_KWARGS), 2)
    G_ema = _randomize(Generator(**G_KWARGS), 3)
    return dict(G=G.eval(), D=D.eval(), G_ema=G_ema.eval())


# ----------------------------------------------------------------------------------------------------------
# Our format.


def _training_state(G):
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    G.train()
    G(torch.randn(2, 8), None).square().mean().backward()
    opt.step()
    return dict(cur_nimg=1234, cur_tick=np.int64(7), ada_p=np.float32(0.25), optimizers=dict(G=opt.state_dict()),
                rng=dict(torch=torch.get_rng_state(), python=random.getstate(), numpy=np.random.get_state()))


def test_round_trip_is_bit_identical(tmp_path, nets):
    ts = _training_state(Generator(**G_KWARGS))
    path = tmp_path / "snap.pt"
    save_checkpoint(path, nets, training_state=ts, metadata=dict(kimg=1.5))
    assert [p.name for p in tmp_path.iterdir()] == ["snap.pt"]  # no temporary file left behind
    loaded = load_networks(path)
    assert set(loaded) == {"G", "D", "G_ema"}
    for name, net in loaded.items():
        assert type(net) is type(nets[name]) and not net.training
        assert not any(p.requires_grad for p in net.parameters())
        for (k, a), (k2, b) in zip(nets[name].state_dict().items(), net.state_dict().items(), strict=True):
            assert k == k2 and torch.equal(a, b)
    for a, b in zip(_outputs(nets["G"], nets["D"]), _outputs(loaded["G"], loaded["D"]), strict=True):
        assert torch.equal(a, b)
    assert set(load_networks(path, names=["D"])) == {"D"}

    state = load_training_state(path)
    assert state["cur_nimg"] == 1234 and type(state["cur_tick"]) is int and type(state["ada_p"]) is float
    assert torch.equal(state["rng"]["torch"], ts["rng"]["torch"])
    assert state["rng"]["python"] == ts["rng"]["python"]
    np_state = state["rng"]["numpy"]
    assert np_state[0] == "MT19937" and np.array_equal(np_state[1].numpy(), ts["rng"]["numpy"][1])
    opt = ts["optimizers"]["G"]
    for i, s in opt["state"].items():
        assert torch.equal(state["optimizers"]["G"]["state"][i]["exp_avg"], s["exp_avg"])
    assert state["optimizers"]["G"]["param_groups"] == opt["param_groups"]
    assert load_checkpoint(path)["metadata"] == dict(kimg=1.5)
    assert load_checkpoint(path)["networks"]["G"]["init_kwargs"] == nets["G"].init_kwargs


def test_networks_only_checkpoint_has_no_training_state(tmp_path, nets):
    save_checkpoint(tmp_path / "a.pt", dict(G=nets["G"]))
    assert load_training_state(tmp_path / "a.pt") is None


def test_overwrite_is_atomic_and_failed_save_keeps_old_file(tmp_path, nets):
    path = tmp_path / "snap.pt"
    save_checkpoint(path, dict(G=nets["G"]))
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"training_state\['bad'\]"):
        save_checkpoint(path, dict(G=nets["G"]), training_state=dict(bad=object()))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["snap.pt"]


def test_save_rejects_modules_that_cannot_be_rebuilt(tmp_path):
    with pytest.raises(TypeError, match="init_kwargs"):
        save_checkpoint(tmp_path / "x.pt", dict(net=torch.nn.Linear(2, 2)))
    lin = torch.nn.Linear(2, 2)
    lin.init_kwargs = dict(in_features=2, out_features=2)
    with pytest.raises(TypeError, match="torch.nn.modules.linear.Linear"):
        save_checkpoint(tmp_path / "x.pt", dict(net=lin))


def test_truncated_corrupted_and_foreign_files_give_clear_errors(tmp_path, nets):
    path = tmp_path / "snap.pt"
    save_checkpoint(path, dict(G=nets["G"]))
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.pt.*truncated or corrupted"):
        load_networks(tmp_path / "trunc.pt")
    flipped = bytearray(data)
    offset = data.index(b"data/0") + 200  # inside the first tensor's bytes
    flipped[offset] ^= 0xFF
    (tmp_path / "flip.pt").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="flip.pt.*CRC32"):
        load_networks(tmp_path / "flip.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*not a styleinv checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_networks(tmp_path / "missing.pt")
    with pytest.raises(KeyError, match="'D'"):
        load_networks(path, names=["D"])


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch boom-marker",))


def test_torch_file_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": checkpoint.FORMAT, "x": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt.*weights-only"):
        load_networks(tmp_path / "evil.pt")
    assert not (tmp_path / "boom-marker").exists()


def test_classes_outside_the_project_are_not_built(tmp_path, nets):
    path = tmp_path / "snap.pt"
    save_checkpoint(path, dict(G=nets["G"]))
    content = torch.load(path, weights_only=True)
    for bad in ["torch.nn.Linear", "os.system", "training.checkpoint.plain_data", "training.no_such_module.G"]:
        content["networks"]["G"]["class_path"] = bad
        torch.save(content, path)
        with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
            load_networks(path)


def test_plain_data_converts_numpy_and_rejects_objects():
    out = checkpoint.plain_data(dict(a=np.float64(1.5), b=[np.int32(2)], c=np.arange(3), d=(1, "x")))
    assert out["a"] == 1.5 and type(out["a"]) is float and type(out["b"][0]) is int
    assert torch.equal(out["c"], torch.arange(3)) and out["d"] == (1, "x")
    with pytest.raises(TypeError, match=r"x\['f'\]"):
        checkpoint.plain_data(dict(f=lambda: 0), "x")
    with pytest.raises(TypeError, match="not a string"):
        checkpoint.plain_data({1: 2}, "kw", json_only=True)


def test_store_init_kwargs():
    class Base(torch.nn.Module):
        @store_init_kwargs
        def __init__(self, a: int, b=(1, 2), **extra):
            super().__init__()

    class Child(Base):
        @store_init_kwargs
        def __init__(self, c: float = 0.5):
            super().__init__(a=3, flag=True)

    assert Base(1, e="x").init_kwargs == dict(a=1, b=[1, 2], e="x")
    assert Child().init_kwargs == dict(c=0.5)  # the outermost class's arguments win
    with pytest.raises(TypeError, match="Base constructor arguments"):
        Base(a=torch.zeros(1))


def test_copy_params_and_buffers(nets):
    dst = Generator(**G_KWARGS).eval()
    copy_params_and_buffers(nets["G"], dst, require_all=True)
    for a, b in zip(_outputs(nets["G"], nets["D"]), _outputs(dst, nets["D"]), strict=True):
        assert torch.equal(a, b)
    bigger = Generator(**dict(G_KWARGS, w_dim=16))
    with pytest.raises(ValueError, match="shape"):
        copy_params_and_buffers(nets["G"], bigger)
    cond = Generator(**dict(G_KWARGS, c_dim=2))
    copy_params_and_buffers(nets["G"], cond.synthesis)  # partial copies by name are fine
    with pytest.raises(KeyError, match="embed"):
        copy_params_and_buffers(nets["G"], cond, require_all=True)


# ----------------------------------------------------------------------------------------------------------
# Official stylegan2-ada-pytorch pickles, written here in their layout (STYLEGAN2.md 1.5) with stand-in
# `torch_utils.persistence` / `dnnlib.util` modules registered only while *writing* (tests/_official_pickles.py).


# numpy scalars on SynthesisLayer records and MappingNetwork's w_avg_beta, as in real snapshots.
def _official_attrs(m):
    attrs = dict(act_gain=np.float64(np.sqrt(2))) if isinstance(m, SynthesisLayer) else {}
    if hasattr(m, "w_avg_beta"):
        attrs["w_avg_beta"] = m.w_avg_beta
    return attrs


def _write_official(path, nets, protocol=3, augment_pipe=True, inject=None):
    def build(ns):
        def record(net, **kwargs):
            return official_records(ns, net, attrs=_official_attrs, **kwargs)

        data = dict(
            G=record(nets["G"], init_kwargs=G_KWARGS),
            # D with positional constructor arguments, as persistence also records them.
            D=record(nets["D"], init_args=(0, 16, 3),
                     init_kwargs={k: v for k, v in D_KWARGS.items() if k not in ("c_dim", "img_resolution",
                                                                                "img_channels")}),
            G_ema=record(nets["G_ema"], init_kwargs=G_KWARGS),
            augment_pipe=None,
            training_set_kwargs=ns.EasyDict(class_name="training.dataset.ImageFolderDataset", path="/data/x.zip",
                                            use_labels=False, max_size=100, xflip=True, resolution=16),
        )
        if augment_pipe:
            pipe = torch.nn.Module()
            pipe.register_buffer("p", torch.tensor(0.3))
            pipe.register_buffer("Hz_geom", torch.randn(12))
            data["augment_pipe"] = record(pipe, init_kwargs=dict(xflip=1, rotate90=1),
                                          class_names={torch.nn.Module: "AugmentPipe"})
        if inject is not None:
            data["G"].meta["state"]["_modules"]["mapping"].meta["state"]["note"] = inject
        return data

    path.write_bytes(dumps(build, protocol=protocol))


@pytest.mark.parametrize("protocol", [3, 4])
def test_official_pickle_loads_with_identical_outputs(tmp_path, nets, monkeypatch, protocol):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "network-snapshot-000000.pkl"
    _write_official(path, nets, protocol=protocol)
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules
    loaded = load_networks(path)
    assert set(loaded) == {"G", "D", "G_ema"}  # augment_pipe is not a network we rebuild
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules
    assert not (tmp_path / "module-src-was-executed").exists()
    for name in loaded:
        assert type(loaded[name]) is type(nets[name])
        for (k, a), (k2, b) in zip(nets[name].state_dict().items(), loaded[name].state_dict().items(), strict=True):
            assert k == k2 and torch.equal(a, b)
    for a, b in zip(_outputs(nets["G"], nets["D"]), _outputs(loaded["G"], loaded["D"]), strict=True):
        assert torch.equal(a, b)
    assert loaded["G"].init_kwargs == nets["G"].init_kwargs
    assert loaded["D"].init_kwargs == nets["D"].init_kwargs

    content = read_official_pickle(path)
    assert content["training_set_kwargs"]["resolution"] == 16 and type(content["training_set_kwargs"]) is dict
    pipe = content["augment_pipe"]
    assert pipe.class_name == "AugmentPipe" and pipe.init_kwargs == dict(xflip=1, rotate90=1)
    assert abs(float(pipe.state_dict()["p"]) - 0.3) < 1e-7
    assert all("module_src" not in vars(r) for r in content.values() if isinstance(r, checkpoint.PickledModule))
    assert load_training_state(path) is None


def test_official_pickle_from_numpy1(tmp_path, nets):
    # numpy-1-era snapshots name the scalar reconstructor numpy.core.multiarray.scalar.
    path = tmp_path / "old.pkl"
    _write_official(path, nets, protocol=3, augment_pipe=False)
    data = path.read_bytes()
    assert b"cnumpy._core.multiarray\nscalar\n" in data
    path.write_bytes(data.replace(b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n"))
    loaded = load_networks(path, names=["G"])
    assert torch.equal(_outputs(loaded["G"], nets["D"])[0], _outputs(nets["G"], nets["D"])[0])


def test_official_pickle_errors(tmp_path, nets):
    path = tmp_path / "snap.pkl"
    _write_official(path, nets)
    with pytest.raises(ValueError, match="AugmentPipe"):
        load_networks(path, names=["augment_pipe"])
    with pytest.raises(KeyError, match="SI"):
        load_networks(path, names=["SI"])
    data = path.read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="cut.pkl.*truncated or corrupted"):
        load_networks(tmp_path / "cut.pkl")
    with pytest.raises(ValueError, match="plain pickle"):
        load_checkpoint(path)


class _System:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('pwned-marker').touch()",))


class _EvilStorage:  # a nested storage blob that is itself a code-running pickle
    def __reduce__(self):
        return (torch.storage._load_from_bytes, (pickle.dumps(_System(), protocol=2),))


@pytest.mark.parametrize("payload, name", [(_System, "system"), (_Eval, "builtins.eval"),
                                           (_EvilStorage, "weights-only")])
def test_malicious_pickles_run_nothing(tmp_path, nets, monkeypatch, payload, name):
    monkeypatch.chdir(tmp_path)
    top = tmp_path / "top.pkl"
    top.write_bytes(pickle.dumps(dict(G=payload()), protocol=3))
    nested = tmp_path / "nested.pkl"  # hidden inside a network record's state
    _write_official(nested, nets, inject=payload())
    for path in (top, nested):
        with pytest.raises(ValueError, match=name):
            load_networks(path)
        with pytest.raises(ValueError, match=name):
            read_official_pickle(path)
    assert not (tmp_path / "pwned-marker").exists()


def test_reading_official_pickle_does_not_use_pickle_load(tmp_path, nets, monkeypatch):
    path = tmp_path / "snap.pkl"
    _write_official(path, nets)

    def forbidden(*args, **kwargs):
        raise AssertionError("unrestricted unpickling used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert set(load_networks(path)) == {"G", "D", "G_ema"}


def test_saved_checkpoint_follows_the_umask(tmp_path):
    import os

    from tests.conftest import make_tiny_generator
    from training.checkpoint import save_checkpoint
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "a.pt", {"G": make_tiny_generator()})
    finally:
        os.umask(old)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644

"""Reading reference ``network-snapshot-*.pkl`` files without running anything from them."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from stylefa.errors import InputError, UnsafeFileError
from stylefa.nets.config import GeneratorConfig, MappingConfig
from stylefa.nets.pkl_import import (
    discriminator_config_from_kwargs,
    generator_config_from_kwargs,
    read_reference_pickle,
)

from .reference_pickle import PersistentModule, fake_reference_modules, snapshot_bytes


def _configs(shared_dir, name):
    return json.loads((shared_dir / "reference" / "sg2ada_configs.json").read_text())[name]


@pytest.fixture(scope="module")
def skip32_pkl(shared_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("pkl") / "network-snapshot-000120.pkl"
    path.write_bytes(snapshot_bytes(shared_dir / "reference" / "sg2ada_skip32.npz", _configs(shared_dir, "skip32")))
    return path


def _assert_matches_npz(states, npz_path):
    with np.load(npz_path, allow_pickle=False) as data:
        for kind, prefix in (("G", "G."), ("G_ema", "G."), ("D", "D.")):
            expected = {key[len(prefix) :] for key in data.files if key.startswith(prefix)}
            assert set(states[kind]) == expected
            for name, tensor in states[kind].items():
                np.testing.assert_array_equal(tensor.numpy(), data[prefix + name], err_msg=f"{kind}.{name}")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_reads_all_tensors_and_configs(shared_dir, tmp_path, protocol):
    npz = shared_dir / "reference" / "sg2ada_skip32.npz"
    path = tmp_path / "snap.pkl"
    path.write_bytes(snapshot_bytes(npz, _configs(shared_dir, "skip32"), protocol=protocol))
    snap = read_reference_pickle(path)
    _assert_matches_npz(snap.states, npz)
    # The fake reference modules existed only while the bytes were written.
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules

    g = snap.g_config
    assert (g.z_dim, g.c_dim, g.w_dim, g.img_resolution, g.img_channels) == (64, 0, 64, 32, 1)
    assert g.mapping.num_layers == 2
    assert (g.synthesis.channel_base, g.synthesis.channel_max, g.synthesis.conv_clamp) == (1024, 64, 256)
    assert g.synthesis.architecture == "skip" and g.synthesis.num_fp16_res == 0
    d = snap.d_config
    assert (d.architecture, d.channel_base, d.channel_max, d.conv_clamp) == ("resnet", 1024, 64, 256)
    assert d.epilogue.mbstd_group_size == 4 and d.mapping.w_avg_beta is None

    assert snap.augment_p == pytest.approx(0.25)
    assert snap.augment_kwargs == {"xflip": 1, "rotate90": 1, "xint": 1, "scale": 1}
    assert snap.training_set_kwargs["max_size"] == 1200  # a numpy int64 in the pickle
    assert snap.training_set_kwargs["path"] == "/data/fa.zip"
    assert len(snap.file_sha256) == 64


def test_protocol2_conditional(shared_dir, tmp_path):
    # Protocol 2 spells bytes through _codecs.encode and sets through builtins.set.
    npz = shared_dir / "reference" / "sg2ada_cond16.npz"
    path = tmp_path / "cond.pkl"
    path.write_bytes(snapshot_bytes(npz, _configs(shared_dir, "cond16"), protocol=2))
    snap = read_reference_pickle(path)
    _assert_matches_npz(snap.states, npz)
    assert snap.g_config.c_dim == 3 and snap.g_config.mapping.num_layers == 8
    assert snap.g_config.synthesis.conv_clamp is None
    assert snap.d_config.c_dim == 3 and snap.d_config.epilogue.mbstd_group_size == 2


def test_views_and_strides_rebuild_exactly(tmp_path):
    base = torch.arange(40, dtype=torch.float32)
    with fake_reference_modules():
        net = PersistentModule("Generator", {"z_dim": 1})
        net.register_buffer("offset_view", base[7:19].view(3, 4))  # storage offset 7, storage of 40
        net.register_parameter("transposed", torch.nn.Parameter(base[:12].view(3, 4).t(), requires_grad=False))
        net.register_buffer("fp16", torch.linspace(-1, 1, 5).half())
        data = pickle.dumps({"G": net}, protocol=4)
    path = tmp_path / "views.pkl"
    path.write_bytes(data)
    from stylefa.nets.safe_unpickle import restricted_load

    record = restricted_load(path)["G"]
    buffers, params = record.state["_buffers"], record.state["_parameters"]
    torch.testing.assert_close(buffers["offset_view"], base[7:19].view(3, 4), rtol=0, atol=0)
    torch.testing.assert_close(params["transposed"], base[:12].view(3, 4).t(), rtol=0, atol=0)
    assert buffers["fp16"].dtype == torch.float16
    torch.testing.assert_close(buffers["fp16"], torch.linspace(-1, 1, 5).half(), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Architecture from constructor kwargs


def test_generator_kwargs_map_onto_config():
    cfg = generator_config_from_kwargs(
        {
            "z_dim": 512,
            "c_dim": 0,
            "w_dim": 512,
            "img_resolution": 256,
            "img_channels": 1,
            "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {
                "channel_base": 16384,
                "channel_max": 512,
                "num_fp16_res": 4,
                "conv_clamp": 256,
                "fp16_channels_last": False,
            },
        }
    )
    assert cfg == GeneratorConfig(
        img_resolution=256,
        mapping=MappingConfig(num_layers=2),
        synthesis=cfg.synthesis.__class__(channel_base=16384, num_fp16_res=4, conv_clamp=256),
    )


def test_discriminator_block_kwargs_go_to_top_level():
    cfg = discriminator_config_from_kwargs(
        {
            "c_dim": 0,
            "img_resolution": 64,
            "img_channels": 1,
            "architecture": "orig",
            "block_kwargs": {"freeze_layers": 2},
            "mapping_kwargs": {},
            "epilogue_kwargs": {"mbstd_group_size": 8},
        }
    )
    assert cfg.freeze_layers == 2 and cfg.architecture == "orig" and cfg.epilogue.mbstd_group_size == 8


def test_unknown_constructor_argument_is_refused():
    with pytest.raises(InputError, match="kernel_size"):
        generator_config_from_kwargs(
            {"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 8, "img_channels": 1,
             "synthesis_kwargs": {"kernel_size": 5}}
        )


# --------------------------------------------------------------------------------------------
# Malicious and broken files


class _Payload:
    """Pickles to ``func(*args)``: what an attacker would put in a file."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _WithState:
    """Pickles to ``cls()`` followed by a BUILD with ``state``."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    def __reduce__(self):
        return self.cls, (), self.state


def _write(tmp_path, obj, protocol=4, name="evil.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _attacks(marker):
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess": _Payload(subprocess.call, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_code_execution_is_refused(tmp_path, attack, protocol):
    marker = tmp_path / "marker"
    payload = _attacks(marker)[attack]
    path = _write(tmp_path, {"G": payload, "training_set_kwargs": {}}, protocol)
    # Positive control: an ordinary pickle.load of this file does run the attack.
    pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafeFileError, match="not allowed") as info:
        read_reference_pickle(path)
    assert info.value.path == str(path)
    assert not marker.exists()


def test_attack_nested_inside_network_state_is_refused(tmp_path):
    marker = tmp_path / "marker"
    with fake_reference_modules():
        net = PersistentModule("Generator", {"z_dim": 1})
        # Set after construction: the constructor's deepcopy would itself run the payload.
        net._init_kwargs["note"] = _Payload(os.system, f"touch {marker}")
        data = pickle.dumps({"G": net})
    path = tmp_path / "nested.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeFileError):
        read_reference_pickle(path)
    assert not marker.exists()


def test_unknown_persistent_class_is_refused(tmp_path):
    marker = tmp_path / "marker"
    src = f"open({str(marker)!r}, 'w').close()\n"
    with fake_reference_modules():
        data = pickle.dumps({"G": PersistentModule("Backdoor", {}, module_src=src)})
    path = tmp_path / "unknown.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeFileError, match="unknown class 'Backdoor'"):
        read_reference_pickle(path)
    assert not marker.exists()


def test_module_source_is_never_executed(tmp_path):
    # A known class whose embedded source would create the marker if it were exec'd.
    marker = tmp_path / "marker"
    src = f"open({str(marker)!r}, 'w').close()\n"
    with fake_reference_modules():
        net = PersistentModule("Generator", {"z_dim": 1}, module_src=src)
        net.register_buffer("w", torch.ones(2))
        data = pickle.dumps({"G": net})
    path = tmp_path / "src.pkl"
    path.write_bytes(data)
    from stylefa.nets.safe_unpickle import restricted_load

    record = restricted_load(path)["G"]
    assert record.class_name == "Generator" and not hasattr(record, "module_src")
    assert not marker.exists()


def test_easydict_tricks_are_refused(tmp_path):
    marker = tmp_path / "marker"
    with fake_reference_modules() as ref:
        # 1. A subclass of EasyDict whose reduce runs a command.
        class Sneaky(ref.EasyDict):
            def __reduce__(self):
                return os.system, (f"touch {marker}",)

        subclass = pickle.dumps({"training_set_kwargs": Sneaky(a=1)}, protocol=4)
        # 2. An EasyDict carrying object state (a BUILD opcode) to plant attributes.
        planted = pickle.dumps({"training_set_kwargs": _WithState(ref.EasyDict, {"__setstate__": "x"})}, protocol=4)
    # 3. Walking attributes from the allowed name ("EasyDict.__init__.__globals__").
    dotted = (
        b"\x80\x04\x8c\x0bdnnlib.util\x8c\x1dEasyDict.__init__.__globals__\x93" + pickle.STOP
    )
    cases = (
        ("subclass", subclass, "posix.system"),
        ("planted", planted, "EasyDict .* carries object state"),
        ("dotted", dotted, "EasyDict.__init__.__globals__, which is not allowed"),
    )
    for name, data, reason in cases:
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        with pytest.raises(UnsafeFileError, match=reason):
            read_reference_pickle(path)
    assert not marker.exists()


def test_malicious_storage_blob_is_refused(tmp_path):
    marker = tmp_path / "marker"
    blob = pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)
    path = _write(tmp_path, {"G": _Payload(torch.storage._load_from_bytes, blob)})
    with pytest.raises(UnsafeFileError, match="storage"):
        read_reference_pickle(path)
    assert not marker.exists()


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    storage = torch.TypedStorage(wrap_storage=torch.zeros(4).untyped_storage(), dtype=torch.float32, _internal=True)
    path = _write(
        tmp_path, {"G": _Payload(torch._utils._rebuild_tensor_v2, storage, 0, (100,), (1,), False, OrderedDict())}
    )
    with pytest.raises(UnsafeFileError, match="beyond its storage"):
        read_reference_pickle(path)


def test_persistent_ids_and_other_codecs_are_refused(tmp_path):
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "ref" else None

    buf = io.BytesIO()
    WithPid(buf, protocol=4).dump({"G": "ref"})
    pid = tmp_path / "pid.pkl"
    pid.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeFileError, match="persistent id"):
        read_reference_pickle(pid)

    import codecs

    codec = _write(tmp_path, {"G": _Payload(codecs.encode, "abc", "rot13")}, name="codec.pkl")
    with pytest.raises(UnsafeFileError, match="not allowed|codec"):
        read_reference_pickle(codec)


def test_truncated_and_wrong_content(skip32_pkl, tmp_path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(skip32_pkl.read_bytes()[:100_000])
    with pytest.raises(InputError, match="corrupt or truncated") as info:
        read_reference_pickle(cut)
    assert not isinstance(info.value, UnsafeFileError) and info.value.path == str(cut)

    not_snapshot = _write(tmp_path, [1, 2, 3], name="list.pkl")
    with pytest.raises(InputError, match="not a StyleGAN2-ADA network snapshot"):
        read_reference_pickle(not_snapshot)

    with pytest.raises(InputError, match="file not found"):
        read_reference_pickle(tmp_path / "absent.pkl")

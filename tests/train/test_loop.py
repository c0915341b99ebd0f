"""``stylefa train`` end to end on a tiny dataset: run directory contents, logs, snapshots,
dry run, bad input, fine-tuning start, and the CPU-only handling of GPU options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefa.cli import main

from .blob_dataset import write_blob_dataset

ROOT = Path(__file__).resolve().parents[2]




def test_cli_run_writes_complete_run_directory(tmp_path, capsys):
    data = write_blob_dataset(tmp_path / "data", label_dim=3)
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny", "--kimg", "0.02",
                 "--tick", "0.008", "--snap", "2", "--mirror", "--aug", "fixed", "--p", "0.2"])
    out = capsys.readouterr().out
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("00000-data-tiny-batch4-")
    assert "effective G lr 0.002 " in out and "D lr 0.00235294" in out

    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["effective_optim"]["G"]["lr"] == pytest.approx(0.002)
    assert options["effective_optim"]["D"]["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert options["loss"]["r1_gamma"] == pytest.approx(0.0002 * 16**2 / 4)
    assert options["ema_kimg"] == pytest.approx(4 * 10 / 32) and options["G"]["c_dim"] == 3
    assert options["mirror"] is True and options["augment"]["p"] == 0.2

    # Ticks after minibatches 1, 3 (>= 0.004 + 0.008 kimg) and 5 (the end, 0.02 kimg).
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["Progress/tick"]["mean"] for r in records] == [0, 1, 2]
    assert records[-1]["Progress/kimg"]["mean"] == pytest.approx(0.02)
    first = records[0]
    for name in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Loss/scores/real"):
        assert first[name]["num"] > 0 and np.isfinite(first[name]["mean"])
    assert first["Loss/r1_penalty"]["num"] == 4  # one Dreg pass over the batch of 4
    assert first["Loss/pl_penalty"]["num"] == 2  # batch // pl_batch_shrink
    assert records[-1]["Progress/augment"]["mean"] == pytest.approx(0.2)  # fixed p
    assert list(run_dir.glob("events.out.tfevents.*"))

    from PIL import Image

    for name in ("reals.png", "fakes_init.png", "fakes000000.png"):
        with Image.open(run_dir / name) as img:
            assert img.mode == "L" and img.size == (16 * 16, 16 * 16)

    from stylefa import load_generator, load_networks

    nets = load_networks(run_dir / "network-snapshot-000000.safetensors")
    assert {"G", "G_ema", "D"} <= set(nets)
    G = load_generator(run_dir / "network-snapshot-000000.safetensors")
    img = G(torch.randn(2, G.z_dim), torch.eye(3)[:2])
    assert img.shape == (2, 1, 16, 16) and torch.isfinite(img).all()


def test_dry_run_prints_config_and_writes_nothing(tmp_path, capsys):
    data = write_blob_dataset(tmp_path / "data")
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--dry-run", "--batch", "32"])
    out = capsys.readouterr().out
    assert code == 0
    config = json.loads(out[out.index("{"):])
    assert config["cfg"] == "auto" and config["G"]["mapping"]["num_layers"] == 2
    assert config["loss"]["r1_gamma"] == pytest.approx(0.0002 * 16**2 / 32)
    assert config["ema_kimg"] == pytest.approx(10.0) and config["ema_rampup"] == 0.05
    assert config["loss"]["pl_weight"] == 2 and config["loss"]["style_mixing_prob"] == 0.9
    assert config["augment"]["mode"] == "ada" and config["augment"]["target"] == 0.6
    assert "Adam base lr G 0.0025 D 0.0025" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{missing}"], "dataset folder not found"),
        (["--resolution", "32"], "does not match the dataset's 16 px"),
        (["--batch", "0"], "--batch must be >= 1"),
        (["--resume", "{missing}"], "--resume: no such file"),
        (["--aug", "fixed"], "--aug fixed needs --p"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    data = write_blob_dataset(tmp_path / "data")
    argv = ["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny", "--kimg", "0.004"]
    argv += [a.replace("{missing}", str(tmp_path / "nope")) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_resume_from_network_only_file_starts_a_fine_tuning_run(tmp_path, capsys):
    from stylefa.nets.checkpoint import create_networks, save_networks
    from stylefa.train.options import TrainOptions, resolve

    data = write_blob_dataset(tmp_path / "data")
    config = resolve(TrainOptions(data=str(data), outdir="x", cfg="tiny"), 16, 0, device_type="cpu")
    nets = create_networks(config.G, config.D, seed=7)
    with torch.no_grad():
        nets["G"].mapping.w_avg.fill_(0.5)  # a recognisable value that training moves only slowly
    save_networks(tmp_path / "pretrained.safetensors", G=nets["G"], D=nets["D"])
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny", "--kimg", "0.004",
                 "--resume", str(tmp_path / "pretrained.safetensors")])
    out = capsys.readouterr().out
    assert code == 0 and "fine-tuning from" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    from safetensors.torch import load_file

    snap = load_file(str(run_dir / "network-snapshot-000000.safetensors"))
    # One minibatch with w_avg_beta 0.995 keeps w_avg close to 0.5 (a fresh init has 0).
    assert snap["G.mapping.w_avg"].mean().item() == pytest.approx(0.5, abs=0.05)
    # The fine-tuning run counts images from zero (it is a new run, not a continuation).
    meta = json.loads((run_dir / "resume-000000.json").read_text())
    assert meta["cur_nimg"] == 4


def test_init_from_warm_starts_at_the_files_kimg(tmp_path, capsys):
    from safetensors.torch import load_file

    from stylefa.nets.checkpoint import Provenance, create_networks, save_networks
    from stylefa.train.options import TrainOptions, resolve

    data = write_blob_dataset(tmp_path / "data")
    config = resolve(TrainOptions(data=str(data), outdir="x", cfg="tiny"), 16, 0, device_type="cpu")
    nets = create_networks(config.G, config.D, seed=7)
    with torch.no_grad():
        nets["G_ema"].mapping.w_avg.fill_(0.5)
    # G_ema only (like the shipped demo model): G starts as a copy of it, D fresh.
    save_networks(tmp_path / "demo.safetensors", G_ema=nets["G_ema"], provenance=Provenance(source="train", kimg=3.0))
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny",
                 "--kimg", "3.004", "--init-from", str(tmp_path / "demo.safetensors")])
    assert code == 0 and "fine-tuning from" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["init_from"] == str(tmp_path / "demo.safetensors") and options["init_kimg"] == 3.0
    meta = json.loads((run_dir / "resume-000003.json").read_text())
    assert meta["cur_nimg"] == 3004  # counted on from the file's 3 kimg
    snap = load_file(str(run_dir / "network-snapshot-000003.safetensors"))
    source = nets["G_ema"].state_dict()
    # after one minibatch G_ema is still essentially the file's weights (EMA half-life 1.25 kimg)
    for key in ("synthesis.b4.const", "mapping.fc0.weight"):
        torch.testing.assert_close(snap[f"G_ema.{key}"], source[key], atol=1e-2, rtol=0)
    assert snap["G.mapping.w_avg"].mean().item() == pytest.approx(0.5, abs=0.05)
    # Resuming the warm-started run keeps counting and keeps the record of the warm start.
    assert main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny",
                 "--kimg", "3.008", "--resume", "auto"]) == 0
    assert json.loads((run_dir / "resume-000003.json").read_text())["cur_nimg"] == 3008
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["init_from"] == str(tmp_path / "demo.safetensors") and options["init_kimg"] == 3.0


def test_init_from_copies_weights_exactly_and_refuses_another_architecture(tmp_path):
    from stylefa.errors import InputError
    from stylefa.nets.checkpoint import create_networks, load_networks, save_networks
    from stylefa.runtime import resolve_device
    from stylefa.train.distributed import DistContext
    from stylefa.train.loop import Trainer, open_dataset, resolve_config
    from stylefa.train.options import TrainOptions

    data = write_blob_dataset(tmp_path / "data")
    options = TrainOptions(data=str(data), outdir=str(tmp_path / "runs"), cfg="tiny")
    dataset = open_dataset(options)
    dist = DistContext(device=resolve_device("cpu"))
    config = resolve_config(options, dataset, dist)
    nets = create_networks(config.G, config.D, seed=11)
    save_networks(tmp_path / "full.safetensors", G=nets["G"], G_ema=nets["G_ema"], D=nets["D"])
    trainer = Trainer(config, dataset, dist, None)
    trainer.load_networks(load_networks(tmp_path / "full.safetensors"), tmp_path / "full.safetensors")
    for name in ("G", "G_ema", "D"):
        mine, theirs = getattr(trainer, name).state_dict(), nets[name].state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), name
    # Another architecture: one line naming the network and a mismatching tensor.
    small = resolve_config(TrainOptions(data=str(data), outdir="x", cfg="small"), dataset, dist)
    other = create_networks(small.G, small.D, seed=0)
    save_networks(tmp_path / "other.safetensors", G_ema=other["G_ema"])
    with pytest.raises(InputError, match="G does not match this run's architecture") as info:
        trainer.load_networks(load_networks(tmp_path / "other.safetensors"), tmp_path / "other.safetensors")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="cannot be combined"):
        TrainOptions(data="d", outdir="o", init_from="a", resume="auto")


def test_gpu_options_are_dropped_on_cpu_with_a_warning(tmp_path):
    from stylefa.train.options import TrainOptions, resolve

    opts = TrainOptions(data="d", outdir="o", cfg="small", precision="fp16", tf32=True, channels_last=True)
    with pytest.warns(UserWarning, match="only apply on CUDA"):
        cpu = resolve(opts, 64, 0, device_type="cpu")
    assert (cpu.precision, cpu.tf32, cpu.channels_last) == ("fp32", False, False)
    assert cpu.G.synthesis.num_fp16_res == 0 and cpu.D.num_fp16_res == 0
    gpu = resolve(opts, 64, 0, device_type="cuda")
    assert gpu.G.synthesis.num_fp16_res == 4 and gpu.G.synthesis.conv_clamp == 256
    assert gpu.G.synthesis.fp16_channels_last is True


def test_presets_match_the_reference():
    from stylefa.train.options import TrainOptions, resolve

    auto256 = resolve(TrainOptions(data="d", outdir="o"), 256, 0, num_gpus=1, device_type="cpu")
    # Reference auto at 256 px, 1 GPU: batch min(4096 // 256, 32) = 16, fmaps 0.5, lr 0.0025.
    assert auto256.batch == 16 and auto256.G.synthesis.channel_base == 16384
    assert auto256.loss.r1_gamma == pytest.approx(0.0002 * 256**2 / 16)
    assert auto256.ema_kimg == pytest.approx(16 * 10 / 32) and auto256.D.epilogue.mbstd_group_size == 4
    auto_8gpu = resolve(TrainOptions(data="d", outdir="o"), 256, 0, num_gpus=8, device_type="cpu")
    assert auto_8gpu.batch == 64
    paper = resolve(TrainOptions(data="d", outdir="o", cfg="paper256"), 256, 0, num_gpus=8, device_type="cpu")
    assert (paper.batch, paper.loss.r1_gamma, paper.ema_kimg, paper.ema_rampup) == (64, 1.0, 20.0, None)
    assert paper.G.mapping.num_layers == 8 and paper.D.epilogue.mbstd_group_size == 8
    cifar = resolve(TrainOptions(data="d", outdir="o", cfg="cifar"), 32, 0, device_type="cpu")
    assert (cifar.loss.pl_weight, cifar.loss.style_mixing_prob, cifar.D.architecture) == (0.0, 0.0, "orig")
    assert (auto_8gpu.loss.pl_weight, auto_8gpu.loss.style_mixing_prob) == (2.0, 0.9)
    small = resolve(TrainOptions(data="d", outdir="o", cfg="small"), 64, 0, device_type="cpu")
    assert small.G.mapping.num_layers == 2 and small.G.synthesis.channel_max == 64 and small.batch == 16
    # `stylefa init-network --cfg small` builds the very same networks
    from stylefa.nets.config import small_configs

    assert small_configs(64) == (small.G, small.D)


def test_all_phases_give_finite_gradients_on_the_real_networks():
    from stylefa.nets.checkpoint import create_networks
    from stylefa.train.loss import StyleGAN2Loss
    from stylefa.train.options import LossConfig, TrainOptions, resolve

    config = resolve(TrainOptions(data="d", outdir="o", cfg="tiny"), 16, 2, device_type="cpu")
    nets = create_networks(config.G, config.D, seed=0)
    G, D = nets["G"].train().requires_grad_(False), nets["D"].train().requires_grad_(False)
    loss = StyleGAN2Loss(G, D, LossConfig(r1_gamma=1.0))
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    c = torch.eye(2)[[0, 1, 0, 1]]
    z = torch.randn(4, G.z_dim)
    for phase, module in (("Gmain", G), ("Greg", G), ("Dmain", D), ("Dreg", D)):
        module.requires_grad_(True)
        loss.accumulate_gradients(phase, real, c, z, c, gain=1.0)
        module.requires_grad_(False)
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), phase
        for p in module.parameters():
            p.grad = None
    assert loss.pl_mean.item() > 0


def test_glr_and_dlr_set_each_networks_learning_rate(tmp_path, capsys):
    from stylefa.train.loop import make_optimizer
    from stylefa.train.options import ResolvedTrainConfig

    data = write_blob_dataset(tmp_path / "data")
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--dry-run", "--batch", "32",
                 "--glr", "0.0005", "--dlr", "0.003"])
    out = capsys.readouterr().out
    assert code == 0 and "Adam base lr G 0.0005 D 0.003" in out
    config = ResolvedTrainConfig.from_dict(json.loads(out[out.index("{"):]))
    # lazy regularisation scales each base lr by interval / (interval + 1): G every 4, D every 16
    assert config.G_lr == pytest.approx(0.0005 * 4 / 5) and config.D_lr == pytest.approx(0.003 * 16 / 17)
    module = torch.nn.Linear(2, 2)
    assert make_optimizer(module, config, 4, "G").param_groups[0]["lr"] == pytest.approx(0.0004)
    assert make_optimizer(module, config, 16, "D").param_groups[0]["lr"] == pytest.approx(0.003 * 16 / 17)
    assert "-glr0.0005-dlr0.003" in config.desc


def test_glr_must_be_positive(tmp_path, capsys):
    data = write_blob_dataset(tmp_path / "data")
    assert main(["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--glr", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--glr must be > 0" in err[0]

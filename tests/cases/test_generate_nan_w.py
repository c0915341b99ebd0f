"""../shared/cases/generate-nan-w: a projected w with NaN/Inf is refused in one line, exit 2."""

import numpy as np
import pytest

from stylefa.cli import main


@pytest.mark.parametrize("kind, count", [("nan", 5120), ("inf", 1)])
def test_generate_refuses_non_finite_w(tmp_path, capsys, kind, count):
    from stylefa.study.demo import demo_model_path

    # Built as the case's make_case.py builds it (shapes of the shipped 64x64 demo generator).
    w = np.full((10, 512), np.nan, np.float32) if kind == "nan" else np.zeros((10, 512), np.float32)
    if kind == "inf":
        w[3, 7] = np.inf
    path = tmp_path / f"w_{kind}.npz"
    np.savez(path, w=w)
    out = tmp_path / "OUT"
    code = main(["generate", "--network", str(demo_model_path()), "--projected-w", str(path), "--outdir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == f"stylefa generate: error: {path}: 'w' has {count} NaN/Inf value{'s' if count > 1 else ''}"
    assert not out.exists()


def test_non_finite_noise_map_refused(tmp_path, capsys):
    from stylefa.study.demo import demo_model_path

    path = tmp_path / "w.npz"
    np.savez(path, w=np.zeros((10, 512), np.float32), **{"noise.b4.conv1": np.full((4, 4), np.inf, np.float32)})
    code = main(["generate", "--network", str(demo_model_path()), "--projected-w", str(path),
                 "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "'noise.b4.conv1' has 16 NaN/Inf values" in err

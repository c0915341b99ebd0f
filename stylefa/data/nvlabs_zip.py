"""Export a prepared dataset in the reference StyleGAN2-ADA dataset format.

The reference (NVlabs stylegan2-ada-pytorch, ``dataset_tool.py``) trains from an
uncompressed ZIP of 8-bit PNGs named ``00000/img00000000.png`` (1000 per folder) plus a
``dataset.json`` holding ``{"labels": null}`` or ``{"labels": [[name, int], ...]}``.
FA is quantised here (pixel = round(FA * 255)) because that format is 8-bit; our own
``images.npy`` keeps float32.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

IMAGES_PER_FOLDER = 1000


def archive_name(index: int) -> str:
    return f"{index // IMAGES_PER_FOLDER:05d}/img{index:08d}.png"


def export_nvlabs_zip(dataset: str | os.PathLike, output: str | os.PathLike, split: str = "train") -> Path:
    """Write ``output`` (.zip) from the slices of ``split`` of a prepared dataset folder."""
    from PIL import Image

    from stylefa.data.dataset import FADataset
    from stylefa.fileio import atomic_path, fa_to_uint8

    data = FADataset(dataset, split=split)
    output = Path(output)
    labels = [] if data.label_dim else None
    with atomic_path(output, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, item in enumerate(data.metadata):
                name = archive_name(index)
                buffer = io.BytesIO()
                Image.fromarray(fa_to_uint8(data.fa(index)[0])).save(buffer, format="PNG")
                archive.writestr(name, buffer.getvalue())
                if labels is not None:
                    labels.append([name, int(item["label"])])
            archive.writestr("dataset.json", json.dumps({"labels": labels}))
    return output

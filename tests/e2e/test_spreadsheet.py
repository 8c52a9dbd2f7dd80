"""summary.csv in a real spreadsheet: LibreOffice Calc (headless) must read every numeric column as numbers."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pandas as pd

from tests.conftest import skip_or_fail
from tests.e2e.test_bench_cli import FAST, edgebench
from tests import onnx_models

NS = {"table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
      "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0"}
NUMERIC = ["schema_version", "batch_size", "n_processes", "n_samples", "latency_ms_median", "latency_ms_p90",
           "latency_ms_p99", "latency_ms_ci95_low", "latency_ms_ci95_high", "throughput_ips", "init_ms",
           "first_inference_ms", "peak_rss_mb", "session_rss_mb", "model_bytes", "model_zip_bytes", "params",
           "nonzero_params", "accuracy", "f1_macro", "gmean", "load_avg_1m"]


def cells(row: ET.Element) -> list[ET.Element]:
    out = []
    for cell in row.findall("table:table-cell", NS):
        repeat = int(cell.get(f"{{{NS['table']}}}number-columns-repeated", "1"))
        out += [cell] * min(repeat, 200)
    return out


def test_libreoffice_reads_the_numbers_as_numbers(tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        skip_or_fail("LibreOffice Calc is not installed (apt-get install libreoffice-calc-nogui)")
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    data = onnx_models.digits_npz(tmp_path / "digits.npz", n=60)
    out = tmp_path / "out"
    assert edgebench("bench", model, "--data", data, "--out", out, *FAST).returncode == 0
    # CSV filter options: comma separator, double-quote text, UTF-8 (76), start at row 1
    proc = subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/lo-profile",
                           "--infilter=CSV:44,34,76,1", "--convert-to", "fods", "--outdir", str(tmp_path),
                           str(out / "summary.csv")], capture_output=True, text=True, timeout=180)
    sheet = tmp_path / "summary.fods"
    assert sheet.exists(), proc.stderr
    rows = ET.parse(sheet).getroot().findall(".//table:table-row", NS)
    header = ["".join(c.itertext()).strip() for c in cells(rows[0])]
    values = cells(rows[1])
    expected = pd.read_csv(out / "summary.csv").iloc[0]
    for column in NUMERIC:
        cell = values[header.index(column)]
        assert cell.get(f"{{{NS['office']}}}value-type") == "float", (column, "".join(cell.itertext()))
        assert float(cell.get(f"{{{NS['office']}}}value")) == expected[column]
    assert values[header.index("status")].get(f"{{{NS['office']}}}value-type") == "string"

"""--input values and --data for inputs: parsing, identity for resume, the runner spec, the `inputs` cell."""

from __future__ import annotations

import numpy as np
import pytest

from harness.experiment import load_experiment
from harness.inputs import describe_fed, parse_inputs, runner_inputs
from harness.measurement import RunSpec
from targets.errors import EdgebenchError


def test_values_are_numbers_bools_random_or_npy_files(tmp_path):
    np.save(tmp_path / "state.npy", np.zeros((2, 1, 128), np.float32))
    sr, half, flag, ids, state = parse_inputs(["sr=16000", "scale=0.5", "flag=true", "ids=random",
                                               f"state={tmp_path / 'state.npy'}"])
    assert (sr.number, type(sr.number)) == (16000, int) and half.number == 0.5 and flag.number is True
    assert ids.random and state.path == (tmp_path / "state.npy").resolve() and len(state.sha256) == 64


@pytest.mark.parametrize("flags, words", [
    (["sr"], ["NAME=VALUE"]),
    (["sr=sixteen"], ["sr=sixteen", "not a number", ".npy"]),
    (["state=missing.npy"], ["no such file"]),
    (["sr=nan"], ["finite"]),
    (["sr=1", "sr=2"], ["sr is given twice"]),
])
def test_bad_values_say_what_to_write(flags, words):
    with pytest.raises(EdgebenchError) as info:
        parse_inputs(flags)
    for word in words:
        assert word in str(info.value)


def test_a_npy_value_travels_as_a_file_and_scalars_inline(tmp_path):
    np.save(tmp_path / "state.npy", np.zeros(3, np.float32))
    values = parse_inputs([f"state={tmp_path / 'state.npy'}", "sr=16000", "ids=random"])
    spec = runner_inputs(values, tmp_path / "d.npz", (("input", (1, 576)),), seed=3)
    assert spec["files"] == {"data": str(tmp_path / "d.npz"), "value:state": str((tmp_path / "state.npy").resolve())}
    assert spec["values"] == {"state": {"file": "value:state"}, "sr": {"constant": 16000}, "ids": {"random": True}}
    assert spec["shapes"] == {"input": [1, 576]} and spec["inputs"] == {"seed": 3}
    run = RunSpec(inputs=values).runner_spec(tmp_path / "m.onnx")
    assert run["files"]["model"] == str(tmp_path / "m.onnx") and run["files"]["value:state"].endswith("state.npy")


def test_what_is_fed_is_part_of_a_measurements_identity(tmp_path):
    plain = RunSpec()
    assert "inputs" not in plain.settings_key()  # hashes of results measured before --input stay valid
    a = RunSpec(inputs=parse_inputs(["sr=16000"]))
    b = RunSpec(inputs=parse_inputs(["sr=8000"]))
    assert len({plain.settings_hash(), a.settings_hash(), b.settings_hash()}) == 3
    for name, value in (("one.npy", 0.0), ("two.npy", 0.0), ("three.npy", 1.0)):
        np.save(tmp_path / name, np.full(4, value, np.float32))
    one, two, three = (RunSpec(inputs=parse_inputs([f"state={tmp_path / n}"])).settings_hash()
                       for n in ("one.npy", "two.npy", "three.npy"))
    assert one == two != three  # a file's content counts, not its name


def test_the_inputs_cell_says_name_dtype_shape_and_source():
    report = [{"name": "input", "dtype": "float32", "shape": [1, 576], "source": "data", "value": None},
              {"name": "state", "dtype": "float32", "shape": [2, 1, 128], "source": "constant", "value": "zeros.npy"},
              {"name": "sr", "dtype": "int64", "shape": [], "source": "constant", "value": 16000},
              {"name": "noise", "dtype": "float32", "shape": [4], "source": "random", "value": None}]
    assert describe_fed(report) == ("input:float32[1x576]:data; state:float32[2x1x128]:constant=zeros.npy; "
                                    "sr:int64[]:constant=16000; noise:float32[4]:random")


def test_an_experiment_gives_inputs_values_relative_to_its_file(tmp_path):
    np.save(tmp_path / "state.npy", np.zeros(3, np.float32))
    path = tmp_path / "exp.toml"
    path.write_text('[[models]]\nmodel = "zoo:resnet"\n[measure]\ninputs = { sr = 16000, state = "state.npy" }\n')
    (spec,) = load_experiment(path).run_specs()
    assert [v.identity()[:2] for v in spec.inputs] == [["sr", "number"], ["state", "npy"]]
    assert spec.inputs[1].path == (tmp_path / "state.npy").resolve()
    path.write_text('[[models]]\nmodel = "zoo:resnet"\n[measure]\ninputs = { state = "nope.npy" }\n')
    with pytest.raises(EdgebenchError, match=r"measure.inputs state=nope.npy: no such file"):
        load_experiment(path)

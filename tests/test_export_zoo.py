"""Model zoo, model-spec loading and data files: every user mistake is one clear EdgebenchError."""

import numpy as np
import pytest
import torch

from export import data as datamod
from export.zoo import ZOO, load_model
from targets.errors import EdgebenchError


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_run(name):
    model, shape = load_model(f"zoo:{name}")
    assert shape[0] == 1
    with torch.no_grad():
        assert model(torch.zeros((2, *shape[1:]))).shape == (2, 10)


def test_mobilenetv2_input_size_and_channels():
    model, shape = load_model("zoo:mobilenetv2", input_shape=(1, 3, 96, 96))
    assert shape == (1, 3, 96, 96)
    assert any(m.groups > 1 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_factory_from_file_and_weights(tmp_path):
    src = tmp_path / "net.py"
    src.write_text("import torch\nINPUT_SHAPE = (1, 1, 8, 8)\n"
                   "def make():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    model, shape = load_model(f"{src}:make")
    assert shape == (1, 1, 8, 8)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again, _ = load_model(f"{src}:make", weights=tmp_path / "w.pt")
    assert torch.equal(again[1].weight, model[1].weight)


def test_package_module_factory():
    model, shape = load_model("export.zoo:DigitsCNN", input_shape=(1, 1, 8, 8))
    assert shape == (1, 1, 8, 8)


@pytest.mark.parametrize("spec, match", [
    ("zoo:nope", "unknown zoo model"),
    ("no_such_pkg_xyz.mod:make", "cannot import model module"),
    ("justaname", "not valid"),
    ("export.zoo:not_there", "no callable"),
])
def test_bad_specs(spec, match):
    with pytest.raises(EdgebenchError, match=match):
        load_model(spec, input_shape=(1, 1, 8, 8))


def test_file_that_does_not_import(tmp_path):
    src = tmp_path / "broken.py"
    src.write_text("import torch\nthis is not python\n")
    with pytest.raises(EdgebenchError, match="cannot import model module"):
        load_model(f"{src}:make", input_shape=(1, 1, 8, 8))


def test_factory_that_raises(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("def make():\n    raise RuntimeError('out of cheese')\n")
    with pytest.raises(EdgebenchError, match="factory .* failed: RuntimeError: out of cheese"):
        load_model(f"{src}:make", input_shape=(1, 1, 8, 8))


def test_weights_that_do_not_match(tmp_path):
    torch.save({"classifier.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
    with pytest.raises(EdgebenchError, match="do not match the model: missing .*shape mismatch"):
        load_model("zoo:digits-cnn", weights=tmp_path / "w.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgebenchError, match="cannot load weights"):
        load_model("zoo:digits-cnn", weights=tmp_path / "junk.pt")


def test_input_shape_that_does_not_fit():
    with pytest.raises(EdgebenchError, match="input shape 1,3,8,8 does not fit"):
        load_model("export.zoo:DigitsCNN", input_shape=(1, 3, 8, 8))


def test_digits_split_is_fixed_and_resized():
    a = datamod.load_dataset(None, (1, 1, 16, 16))
    b = datamod.load_dataset(None, (1, 1, 16, 16))
    assert a.fingerprint == b.fingerprint
    assert a.x_train.shape[1:] == (1, 16, 16) and a.x_train.dtype == np.float32
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert set(np.unique(a.y_test)) == set(range(10))


def test_npz_round_trip_and_validation(tmp_path):
    x = np.random.rand(40, 1, 8, 8).astype(np.float32)
    y = np.arange(40) % 4
    path = datamod.write_npz(tmp_path / "d.npz", x, y)
    d = datamod.load_dataset(path, (1, 1, 8, 8))
    assert d.num_classes == 4 and len(d.x_test) > 0
    with pytest.raises(EdgebenchError, match="samples are"):
        datamod.load_dataset(path, (1, 1, 16, 16))
    np.savez(tmp_path / "bad.npz", x=x[:, 0], y=y)
    with pytest.raises(EdgebenchError, match="4-D"):
        datamod.load_dataset(tmp_path / "bad.npz", (1, 1, 8, 8))
    np.savez(tmp_path / "noy.npz", x=x)
    with pytest.raises(EdgebenchError, match="'x' and 'y'"):
        datamod.load_dataset(tmp_path / "noy.npz", (1, 1, 8, 8))
    with pytest.raises(EdgebenchError, match="does not exist"):
        datamod.load_dataset(tmp_path / "missing.npz", (1, 1, 8, 8))


def test_a_model_returning_a_tuple_gives_its_first_tensor(tmp_path):
    """MONAI's ViT returns (logits, hidden states): training, export and accuracy need the logits."""
    from export.zoo import SelectOutput

    model, _ = load_model("tests.wild_models:TupleOutput", input_shape=(1, 1, 8, 8))
    assert isinstance(model, SelectOutput)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    torch.save(model.model.state_dict(), tmp_path / "w.pt")  # the user's weights, saved from their model
    second, _ = load_model("tests.wild_models:TupleOutput", tmp_path / "w.pt", (1, 1, 8, 8), output="1")
    with torch.no_grad():
        assert second(torch.zeros(2, 1, 8, 8)).shape == (2, 8)  # the features inside the list
    with pytest.raises(EdgebenchError, match=r"--model-output '2'.*tuple of 2; give a position 0..1"):
        load_model("tests.wild_models:TupleOutput", input_shape=(1, 1, 8, 8), output="2")
    with pytest.raises(EdgebenchError, match="returns one Tensor, nothing to choose"):
        load_model("zoo:digits-cnn", output="logits")

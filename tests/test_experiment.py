"""Experiment files: the built-in default, and messages that name the key and the fix."""

from __future__ import annotations

import tomllib

import pytest

from targets.errors import EdgebenchError
from harness.experiment import DEFAULT_TOML, load_experiment


def test_the_built_in_default_parses_and_covers_the_seed_studies():
    exp = load_experiment(None)
    assert exp.name == "default" and exp.targets == ("local",)
    for v in ("fp32", "prune-l1:0.5", "prune-l1:0.9", "prune-ch:0.3", "prune-ch:0.5", "prune-ch:0.5@iter=3",
              "cluster:4", "cluster-ch:4", "cluster:16", "fp32+int8", "prune-ch:0.5+int8", "cluster:16+int8"):
        assert v in exp.variants
    assert any(v.endswith("+int8dyn") for v in exp.variants)
    assert exp.data is None  # the bundled digits
    assert len(exp.run_specs()) == 1
    # the report names, per target, the INT8 form and the thread count to ship: the default measures them all
    assert exp.int8_forms == "all" and exp.threads_up_to_cores


def test_print_default_is_the_same_document():
    assert tomllib.loads(DEFAULT_TOML)["variants"] == list(load_experiment(None).variants)


def write(tmp_path, text):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, words", [
    ('models = []', ["[[models]]", "no model"]),
    ('[[models]]\nname = "a"', ["models[0].model", "missing"]),
    ('[[models]]\nmodel = "resnet"', ["models[0].model", "zoo:NAME"]),
    ('[[models]]\nmodel = "zoo:resnet"\ncolour = 1', ["models[0]", "unknown key 'colour'"]),
    ('[[models]]\nmodel = "zoo:resnet"\nweights = "nope.pt"', ["models[0].weights", "does not exist"]),
    ('[[models]]\nmodel = "zoo:resnet"\ninput_shape = [0, 3]', ["input_shape", "whole numbers"]),
    ('variants = "fp32"\ntargets = ["local", "local"]\n[[models]]\nmodel = "zoo:resnet"', ["targets", "twice"]),
    ('speed = 3\n[[models]]\nmodel = "zoo:resnet"', ["unknown key 'speed'"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nprocesses = 0', ["measure.processes", ">= 1"]),
    # each of these was an `unexpected ValueError/TypeError` before: the message names the key and an example
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nprocesses = "five"', ["measure.processes", "'five'", "processes = 5"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\ntimeout_s = "1m"', ["measure.timeout_s", "timeout_s = 120"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nmin_time_s = nan', ["measure.min_time_s", "nan"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nseed = -1', ["measure.seed", ">= 0"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\ncpu = ["a"]', ["measure.cpu", "whole numbers"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[data]\npath = 5', ["data.path", "not a path"]),
    ('out = 5\n[[models]]\nmodel = "zoo:resnet"', ["out", "not a path"]),
    ('[[models]]\nmodel = "zoo:resnet"\nweights = 5', ["models[0].weights", "not a path"]),
    ('name = "a\\nb"\n[[models]]\nmodel = "zoo:resnet"', ["name", "plain name"]),
    ('targets = [5]\n[[models]]\nmodel = "zoo:resnet"', ["targets", '["local", "pi"]']),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nbatch_sizes = [0]', ["batch_sizes"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[data]\npath = "none.npz"', ["data.path", "does not exist"]),
    ('[[models]\nmodel = ', ["not valid TOML"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nstreams = [0]', ["measure.streams", "auto"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nstreams = [2, 2]', ["measure.streams", "twice"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nstreams = 2\nstream_sessions = "pool"', ["stream_sessions"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[build]\nint8_forms = "some"', ["build.int8_forms", "'some'", "all"]),
    ('[[models]]\nmodel = "zoo:resnet"\n[measure]\nthreads = "many"', ["measure.threads", '"cores"']),
])
def test_invalid_experiments_name_the_key_and_the_fix(tmp_path, text, words):
    with pytest.raises(EdgebenchError) as err:
        load_experiment(write(tmp_path, text))
    for word in words:
        assert word in str(err.value)


def test_a_missing_experiment_file_says_how_to_start_one(tmp_path):
    with pytest.raises(EdgebenchError, match="--print-default"):
        load_experiment(tmp_path / "none.toml")


def test_relative_paths_resolve_against_the_experiment_file(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"")
    exp = load_experiment(write(tmp_path, 'out = "r"\n[[models]]\nmodel = "zoo:resnet"\nweights = "w.pt"'))
    assert exp.models[0].weights == (tmp_path / "w.pt").resolve()
    assert exp.out == tmp_path / "r"


def test_a_streams_sweep_is_one_run_spec_per_stream_count(tmp_path):
    exp = load_experiment(write(tmp_path, '[[models]]\nmodel = "zoo:resnet"\n[measure]\nthreads = [1]\n'
                                          'streams = [1, 2, "auto"]\nstream_sessions = "shared"'))
    specs = exp.run_specs()
    assert [s.streams for s in specs] == [1, 2, "auto"] and {s.stream_sessions for s in specs} == {"shared"}
    assert len({s.settings_hash() for s in specs}) == 3  # streams is part of a measurement's identity
    default = load_experiment(None).run_specs()
    assert all(s.streams is None and "streams" not in s.settings_key() for s in default)


def test_int8_forms_all_builds_every_form_of_each_plain_int8_variant(tmp_path):
    exp = load_experiment(write(tmp_path, 'variants = ["fp32", "fp32+int8", "cluster:16+int8", "fp32+int8dyn", '
                                          '"fp32+int8:u8s8"]\n[[models]]\nmodel = "zoo:resnet"\n'
                                          '[build]\nint8_forms = "all"'))
    assert exp.build_variants() == ["fp32", "fp32+int8", "cluster:16+int8", "fp32+int8dyn", "fp32+int8:u8s8",
                                    "fp32+int8:reduce", "fp32+int8:s8s8", "cluster:16+int8:reduce",
                                    "cluster:16+int8:u8s8", "cluster:16+int8:s8s8"]
    assert load_experiment(write(tmp_path, 'variants = ["fp32+int8"]\n[[models]]\nmodel = "zoo:resnet"')
                           ).build_variants() == ["fp32+int8"]  # "chosen", the default: the build's pick only


def test_threads_cores_sweeps_up_to_each_targets_core_count(tmp_path):
    exp = load_experiment(write(tmp_path, '[[models]]\nmodel = "zoo:resnet"\n[measure]\nthreads = "cores"'))
    assert exp.thread_counts(4) == (1, 2, 3, 4) and exp.thread_counts(1) == (1,)
    assert [s.threads for s in exp.run_specs(threads=exp.thread_counts(2))] == [1, 2]
    fixed = load_experiment(write(tmp_path, '[[models]]\nmodel = "zoo:resnet"\n[measure]\nthreads = [1, 4]'))
    assert fixed.thread_counts(2) == (1, 4)

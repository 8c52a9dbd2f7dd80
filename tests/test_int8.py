"""export/int8.py: which INT8 form ships, and what a lost accuracy point is blamed on."""

import pytest

from export.int8 import FORMS, Candidate, build_warning, check_form, choose, target_accuracy_warning
from export.variants import parse_variant
from targets.cpu import describe_cpu, int8_kernels, u8s8_may_saturate
from targets.errors import EdgebenchError

HASWELL = {"arch": "x86_64", "cpu_model": "Intel Core Processor (Haswell)", "cpu_features": ["avx", "avx2", "fma"],
           "onnxruntime": "1.31.1"}
EPYC = {"arch": "x86_64", "cpu_model": "AMD EPYC", "cpu_features": ["avx2", "avx512_vnni", "avx512bw", "avx_vnni"]}


def test_the_fastest_accurate_form_ships_and_equal_speed_goes_to_the_form_that_holds_everywhere():
    # the VNNI machine: all three accurate, u8s8 and reduce equally fast, s8s8 slow
    chosen, why = choose(0.978, [Candidate("reduce", 0.980, 0.323), Candidate("u8s8", 0.978, 0.321),
                                 Candidate("s8s8", 0.978, 0.864)], tolerance=1.0)
    assert chosen.form == "reduce" and "as fast as u8s8" in why
    # a real speed difference wins over the tie-break
    chosen, why = choose(0.978, [Candidate("reduce", 0.980, 0.50), Candidate("u8s8", 0.978, 0.30)], tolerance=1.0)
    assert chosen.form == "u8s8" and "the fastest" in why


def test_a_form_that_saturates_on_this_cpu_is_not_shipped():
    # figures measured under the emulated Haswell (AVX2, no VNNI) for the default model
    chosen, why = choose(0.978, [Candidate("reduce", 0.955, 0.33), Candidate("u8s8", 0.783, 0.32),
                                 Candidate("s8s8", 0.975, 0.90)], tolerance=1.0)
    assert chosen.form == "s8s8" and "reduce, u8s8 lost more than 1 point here" in why
    chosen, why = choose(0.978, [Candidate("reduce", 0.80, 0.33), Candidate("u8s8", 0.70, 0.32)], tolerance=1.0)
    assert chosen.form == "reduce" and why.startswith("no form stayed within 1 point")


def test_saturation_risk_is_read_from_the_cpu_features():
    assert u8s8_may_saturate("x86_64", HASWELL["cpu_features"]) is True
    assert u8s8_may_saturate("x86_64", ["avx2", "avx512bw"]) is True  # Skylake-X: AVX-512 but no VNNI
    assert u8s8_may_saturate("x86_64", EPYC["cpu_features"]) is False
    assert u8s8_may_saturate("aarch64", ["asimd"]) is False
    assert u8s8_may_saturate("x86_64", None) is None
    assert describe_cpu(HASWELL) == ("x86_64 Intel Core Processor (Haswell): avx, avx2, fma; "
                                     "no avx512_vnni, avx_vnni or amx_int8")
    assert "U8S8 INT8 sums can saturate here" in int8_kernels(HASWELL)
    assert int8_kernels(EPYC).endswith("VNNI integer kernels")
    assert int8_kernels({"arch": "aarch64", "cpu_features": ["asimd", "asimddp"]}).endswith("dot-product integer kernels")


def test_forms_are_pinned_in_the_variant_spec():
    v = parse_variant("prune-ch:0.5+int8:s8s8")
    assert (v.quant, v.int8_form, str(v), v.dir_name) == ("int8", "s8s8", "prune-ch:0.5+int8:s8s8",
                                                          "prune-ch_0.5+int8_s8s8")
    assert parse_variant("fp32+int8").int8_form is None
    for bad in ("fp32+int8:fast", "fp32+int8dyn:u8s8"):
        with pytest.raises(EdgebenchError, match="an INT8 form follows \\+int8 and is one of reduce, u8s8, s8s8"):
            parse_variant(bad)
    assert check_form("auto") == "auto" and list(FORMS) == ["reduce", "u8s8", "s8s8"]


def _selection(changes: dict[str, float], chosen: str, machine: dict) -> dict:
    return {"tolerance_points": 1.0, "where": "the build machine", "machine": machine, "chosen": chosen,
            "candidates": [{"form": f, "accuracy_change_points": c} for f, c in changes.items()]}


def test_the_build_blames_the_model_only_when_every_form_lost():
    every = build_warning(_selection({"reduce": -6.1, "u8s8": -30.2, "s8s8": -7.0}, "reduce", HASWELL))
    assert "in every form tried" in every and "reduce -6.1, u8s8 -30.2, s8s8 -7.0" in every
    assert "the loss is the model's" in every
    pinned = build_warning(_selection({"u8s8": -30.2}, "u8s8", HASWELL))
    assert "the pinned INT8 form u8s8 loses 30.2 points" in pinned and "U8S8 sums can saturate" in pinned
    assert "plain +int8" in pinned and "+int8:reduce" in pinned
    assert build_warning(_selection({"reduce": -0.3, "u8s8": 0.0}, "reduce", EPYC)) is None


def test_a_target_scoring_lower_than_the_build_machine_is_blamed_on_its_kernels():
    facts = {"accuracy": 0.9833, "int8_form": "u8s8", "variant": "cluster:16+int8:u8s8"}
    text = target_accuracy_warning(facts, 0.7972, HASWELL, "local --python ./haswell-python", same_data=True)
    assert text.startswith("accuracy 79.72% here against 98.33% on the build machine, same file and data "
                           "(18.6 points lower)")
    assert "avx, avx2, fma; no avx512_vnni, avx_vnni or amx_int8" in text and "U8S8 sums can saturate" in text
    assert "--variants cluster:16+int8:reduce" in text and "--int8-select-on local --python ./haswell-python" in text
    assert target_accuracy_warning(facts, 0.7972, HASWELL, "local", same_data=False) is None  # other data
    assert target_accuracy_warning(facts, 0.979, HASWELL, "local", same_data=True) is None  # within 1 point
    float_text = target_accuracy_warning({"accuracy": 0.98, "build_onnxruntime": "1.31.1"}, 0.90, HASWELL, "pi",
                                         same_data=True)
    assert "float kernels differ" in float_text and "1.31.1" in float_text

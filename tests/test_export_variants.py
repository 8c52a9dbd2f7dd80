"""Variant spec parsing: canonical round trips, folder names, and rejects with the valid forms listed."""

import pytest

from export.variants import Variant, parse_variant, parse_variants
from targets.errors import EdgebenchError


@pytest.mark.parametrize("text", [
    "fp32", "prune-l1:0.5", "prune-l1:0.9@iter=3", "prune-ch:0.3", "prune-ch:0.5@iter=3", "cluster:16",
    "cluster:2", "cluster:256", "fp32+int8", "prune-ch:0.5+int8", "cluster:16+int8dyn", "prune-l1:0.5@iter=2+int8",
    "cluster-ch:4", "cluster-ch:16+int8",
])
def test_round_trip(text):
    v = parse_variant(text)
    assert str(v) == text
    assert parse_variant(str(v)) == v
    assert ":" not in v.dir_name and "=" not in v.dir_name


def test_fields_and_base():
    v = parse_variant(" Prune-CH:0.50@iter=3+int8 ")
    assert (v.method, v.amount, v.iterations, v.quant) == ("prune-ch", 0.5, 3, "int8")
    assert str(v.base) == "prune-ch:0.5@iter=3"
    assert v.dir_name == "prune-ch_0.5@iter3+int8"


@pytest.mark.parametrize("text", [
    "fp16", "prune-l1", "prune-l1:1.0", "prune-l1:0", "prune-ch:-0.1", "prune-ch:abc", "cluster:1", "cluster:257",
    "cluster:3.5", "fp32:2", "cluster:16@iter=2", "fp32+int4", "prune-ch:0.5@iter=0", "", "prune-ch:0.5+int8+int8",
    "cluster-ch:1", "cluster-ch", "prune-ch-ch:0.5",
])
def test_rejects_list_valid_forms(text):
    with pytest.raises(EdgebenchError) as e:
        parse_variants([text]) if text else parse_variants(text)
    assert "Valid forms" in str(e.value) or "no variant" in str(e.value)


def test_per_channel_cluster_is_a_cluster_with_another_codebook():
    v = parse_variant("cluster-ch:4+int8")
    assert (v.method, v.clusters, v.codebook, v.quant) == ("cluster-ch", 4, "channel", "int8")
    assert str(v.base) == "cluster-ch:4" and v.dir_name == "cluster-ch_4+int8"
    assert parse_variant("cluster:4").codebook == "layer"
    with pytest.raises(EdgebenchError, match="this method takes no K"):
        Variant("prune-ch", amount=0.5, clusters=4)


def test_one_registry_drives_parsing_description_recipe_and_report_notes():
    from export.build import BuildOptions
    from export.methods import METHODS, Method

    # a method added to the registry parses, describes itself and gets its recipe with no other edit
    METHODS["prune-x"] = Method("prune-x", "ratio", "R = test ratio", True, "finetune_recipe",
                                lambda v: f"{v.amount:.0%} of something", METHODS["fp32"].build,
                                slow_note="x is not faster.")
    try:
        v = parse_variant("prune-x:0.25@iter=2+int8")
        assert str(v) == "prune-x:0.25@iter=2+int8"
        assert v.describe() == ("25% of something, in 2 prune/fine-tune steps, INT8 static QDQ, the form chosen by "
                                "accuracy then speed")
        assert BuildOptions().finetuning(METHODS["prune-x"]) == BuildOptions().finetune_recipe
        assert BuildOptions(finetune=False).finetuning(METHODS["prune-x"]) is None
        assert BuildOptions().finetuning(METHODS["fp32"]) is None
    finally:
        del METHODS["prune-x"]
    with pytest.raises(EdgebenchError, match="unknown method 'prune-x'"):
        parse_variant("prune-x:0.25")


def test_parse_list_and_duplicates():
    assert [str(v) for v in parse_variants("fp32, cluster:4,prune-ch:0.5+int8")] == [
        "fp32", "cluster:4", "prune-ch:0.5+int8"]
    with pytest.raises(EdgebenchError, match="twice"):
        parse_variants("fp32,fp32")


def test_frozen():
    v = Variant("fp32")
    with pytest.raises(Exception):
        v.method = "cluster"  # type: ignore[misc]

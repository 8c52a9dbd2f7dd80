"""ONNX files shipped inside PyPI wheels, and the flags each needs to be measured as it is really used.

Shared by the corpus test (tests/e2e/test_corpus_onnx.py) and scripts/corpus_report.py. The flags come
from how each package calls its model: rapidocr resizes text-detection pages to multiples of 32 and
text lines to height 48 (recognition 320 wide, orientation 192); nudenet feeds 320x320 images;
silero-vad feeds 512 new samples plus 64 of context at 16 kHz, a zero state, and `sr` = 16000.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.corpus import files_in

RAPIDOCR = "rapidocr-onnxruntime==1.4.4"
NUDENET = "nudenet==3.4.2"
SILERO = "silero-vad==6.2.3"

_CHUNK = ("--shape", "input=1,576")  # 512 new samples + 64 of context at 16 kHz
_REAL_USE = ("--input", "state=0", "--input", "sr=16000")  # a fresh stream's zero state, the 16 kHz branch


@dataclass(frozen=True)
class OnnxCase:
    """One corpus model: where it is, the flags it needs, and what makes it interesting."""

    name: str
    requirement: str
    file: str  # a glob inside the unpacked wheel that matches one file
    flags: tuple[str, ...]
    note: str

    def path(self) -> Path:
        (found,) = files_in(self.requirement, f"**/{self.file}")
        return found


CASES = (
    OnnxCase("ppocr-det", RAPIDOCR, "ch_PP-OCRv4_det_infer.onnx", ("--shape", "x=1,3,640,640"),
             "text detector; 3 symbolic dims named p2o.*"),
    OnnxCase("ppocr-rec", RAPIDOCR, "ch_PP-OCRv4_rec_infer.onnx", ("--shape", "x=1,3,48,320"),
             "text recogniser; named and '?' dims"),
    OnnxCase("ppocr-cls", RAPIDOCR, "ch_ppocr_mobile_v2.0_cls_infer.onnx", ("--shape", "x=1,3,48,192"),
             "text direction; unnamed and '?' dims"),
    OnnxCase("nudenet-320n", NUDENET, "320n.onnx", ("--shape", "images=1,3,320,320"),
             "YOLO-style detector; batch/height/width dims"),
    OnnxCase("silero-vad", SILERO, "silero_vad.onnx",
             (*_CHUNK, "--shape", "state=2,1,128", *_REAL_USE),
             "streaming audio; state tensor, int64 scalar sr, unnamed dims"),
    OnnxCase("silero-vad-op15", SILERO, "silero_vad_16k_op15.onnx", (*_CHUNK, *_REAL_USE),
             "the same, named dims: state's `batch` follows input's"),
    OnnxCase("silero-vad-ifless", SILERO, "silero_vad_op18_ifless.onnx", (*_CHUNK, *_REAL_USE),
             "the same, opset 18 without If nodes"),
    OnnxCase("silero-vad-half", SILERO, "silero_vad_half.onnx", (*_CHUNK, "--input", "state=0"),
             "16 kHz only, no sr input"),
    OnnxCase("silero-vad-sequence", SILERO, "silero_vad_16k_sequence.onnx", ("--input", "h=0", "--input", "c=0"),
             "chunks along the first axis; LSTM h/c state"),
    OnnxCase("silero-vad-openvino", SILERO, "silero_vad_openvino_16k.onnx", ("--input", "state=0"),
             "all sizes fixed"),
)

BY_NAME = {c.name: c for c in CASES}

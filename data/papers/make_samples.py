"""Generates the two sample PDFs in this folder from short notes written by the EHNAS team.

They exist so `ehnas knowledge add data/papers` can be tried (and tested) without downloading
papers. The text is ours; the findings it summarises are cited inline. Output is byte-stable
(fixed creation date), so the files' sha256 does not change between runs.

    .venv/bin/python data/papers/make_samples.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

FIXED_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)

SAMPLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "conv_first_hybrids.pdf": (
        "Convolution First: Stage Order in Small Hybrid Networks",
        [
            ("Architectural overview",
             "We study small image classifiers built from three stages of blocks on 32x32 inputs. "
             "Each stage holds a contiguous run of blocks of one family, and the resolution halves "
             "between stages. The networks have between six and fourteen blocks."),
            ("CNN module",
             "The convolutional blocks are residual bottlenecks with grouped 3x3 convolutions. "
             "A cardinality of two to four groups gave better accuracy than adding depth at the same "
             "cost, in line with ResNeXt (arXiv 1611.05431). Stride two is used only at stage boundaries."),
            ("Transformer module",
             "The attention blocks use multi-head self-attention with a head dimension of 64 and an MLP "
             "ratio of 4. On small maps, windows of 7x7 tokens already cover the feature map, following "
             "Swin (arXiv 2103.14030). Fewer heads worked as well as many heads on 1000 training images."),
            ("Hybridization strategy",
             "Placing convolution stages before attention stages was clearly better than the reverse "
             "order, as CoAtNet (arXiv 2106.04803) reported at ImageNet scale. Returning to convolution "
             "after attention did not help. Every block keeps a residual shortcut, and a 1x1 projection "
             "adapts the width at the interface between families."),
            ("Design rationale",
             "Convolution contributes locality and translation equivariance, which matter most when data "
             "is scarce, because plain transformers need large datasets (ViT, arXiv 2010.11929). Attention "
             "is cheapest where the token count is smallest, so it belongs in the late stage. "
             "We recommend that a search space should restrict the early stage to convolution."),
        ],
    ),
    "mamba_late_mixers.pdf": (
        "Mixers in Sequence: Mamba and Attention in Late Stages",
        [
            ("Architectural overview",
             "This note examines where state-space mixers fit in a hierarchical hybrid backbone with a "
             "convolutional stem and two convolutional stages followed by mixed stages."),
            ("Mamba / SSM module",
             "The Mamba blocks use a selective scan with state size 16, expansion 2 and a causal "
             "convolution of kernel 4 before the scan, the usual settings of Vision Mamba "
             "(arXiv 2401.09417). Smaller states saved memory at a small accuracy cost."),
            ("Transformer module",
             "Self-attention blocks follow the Mamba blocks inside each late stage, as in MambaVision "
             "(arXiv 2407.08083), where attention in the final layers recovered global context best."),
            ("Hybridization strategy",
             "Mamba mixers first and attention last worked better than interleaving the two families or "
             "putting attention first. Avoid placing Mamba after attention."),
            ("Design rationale",
             "For small image classification the state-space mixer is optional: MambaOut "
             "(arXiv 2405.07992) found gated convolutions without the SSM competitive on ImageNet. "
             "Keep Mamba blocks a minority of the network, since their benefit grows with sequence length."),
        ],
    ),
}


def write_pdf(path: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    """One text PDF: a title, then a bold heading and a paragraph per section."""
    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author("EHNAS team")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 8, title)
    pdf.ln(4)
    for heading, body in sections:
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, body)
        pdf.ln(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def main(out_dir: Path) -> None:
    for name, (title, sections) in SAMPLES.items():
        print(write_pdf(out_dir / name, title, sections))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)

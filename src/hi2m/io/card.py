"""Model cards: the README.md of every exported model directory, in the Hugging Face Hub's format (YAML
metadata, then Markdown), filled from the run's own files: config.yaml (training data and recipe),
metrics.json (test UAR / WAR / per-class recall), the model's selection rule (config.json metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hi2m.io.files import atomic_write
from hi2m.model.classifier import VideoClassifier

LIMITS = """## Intended use and limits

- **Expressions, not emotions.** The model labels the *visible facial expression* of a face video with one
  of its classes. A facial expression is not a reliable readout of what a person feels, intends or is
  like; do not use it to infer emotions, mental states, honesty, or personality, nor to make decisions
  about people (hiring, policing, education, health, credit).
- **Populations.** DFER datasets (DFEW, FERV39K: movie and TV clips) over-represent some ages and
  ethnicities. The HI2M paper's own subgroup analysis (Appendix J, DFEW fold 1, attributes estimated
  with DeepFace) reports WAR within 58.9-64.5% across subgroups but UAR from 37.5% to 75.0%, with very
  small subgroups (11-45 clips) and near-zero recall on Disgust in several of them. Measure performance
  on the population you deploy on before you rely on it.
- **Classes.** Rare, subtle classes (Disgust, Fear) are recognised far worse than Happy or Neutral, and
  low-intensity expressions tend to be called Neutral (paper, Fig. 3).
- **Input.** Face crops of 16 frames sampled as in training; `hi2m predict` detects and crops the face.
  Clips without a visible face, or with several faces, are outside what it was trained on.
- A model trained on SynthFace (hi2m's procedural data, e.g. by `hi2m demo`) is a demonstration of the
  pipeline, not an expression recogniser for real faces."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_yaml(path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _pct(x, digits: int) -> str:
    return "-" if x is None else f"{100 * float(x):.{digits}f}"


def model_card(model, run_dir: str | Path | None = None, selected: str | None = None,
               library: str = "hi2m", architecture: str | None = None) -> str:
    """The card's text for ``model`` (a VideoClassifier or an HI2M), with what ``run_dir`` holds."""
    run = Path(run_dir) if run_dir else None
    cfg = _read_yaml(run / "config.yaml") if run else None
    metrics = _read_json(run / "metrics.json") if run else None
    classifier = isinstance(model, VideoClassifier)
    c = model.cfg
    data = (cfg or {}).get("data", {})
    dataset = data.get("dataset", "unknown")
    meta = ["---", f"library_name: {library}", "license: apache-2.0",
            f"pipeline_tag: {'video-classification' if classifier else 'feature-extraction'}",
            "tags:", "  - video", "  - facial-expression-recognition", "  - videomae", "  - hi2m",
            "  - masked-autoencoder"]
    if metrics:
        meta += ["metrics:", "  - uar", "  - war"]
    meta.append("---")
    kind = ("an expression classifier (encoder fine-tuned, mean-pooled features, linear head)" if classifier
            else "a pretrained HI2M masked autoencoder (encoder, decoder" +
            (", HRD policy" if c.mask_type == "hrd" else "") + ")")
    lines = meta + ["", f"# {run.name if run else 'hi2m model'}", "",
                    f"{kind.capitalize()}, made with hi2m -- HI2M: hard inter- and "
                    "intra-sample masked autoencoders for dynamic facial expression recognition.", "",
                    "## Model", "",
                    f"- architecture: ViT video encoder, {c.embed_dim} wide, {c.depth} blocks, {c.num_heads} heads; "
                    f"input {c.num_frames} frames x {c.image_size}x{c.image_size}, patch {c.patch_size}, "
                    f"tubelet {c.tubelet_size}; pixel mean {list(c.pixel_mean)}, std {list(c.pixel_std)}",
                    f"- parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M"]
    if architecture:
        lines.append(f"- format: transformers `{architecture}`")
    if classifier:
        lines.append(f"- classes ({model.num_classes}): {', '.join(model.class_names)}")
    else:
        lines.append(f"- pretraining: masking {c.mask_type} (ratio {c.mask_ratio}), target {c.target}, "
                     f"HSM {'on' if c.hsm else 'off'}")
    lines += ["", "## Training data and recipe", ""]
    if cfg:
        o, f = cfg.get("optim", {}), cfg.get("finetune", {})
        lines += [f"- data: `{dataset}` from `{Path(str(data.get('root', '?'))).name}` (train split "
                  f"`{data.get('train_split')}`), {data.get('num_frames')} frames, stride {data.get('stride')}, "
                  f"{data.get('image_size')} px",
                  f"- optimisation: AdamW, base lr {o.get('base_lr')} ({o.get('lr_scaling')} scaling), weight decay "
                  f"{o.get('weight_decay')}, {o.get('epochs')} epochs, batch {data.get('batch_size')} per device"]
        if classifier:
            lines.append(f"- initialised from: {f.get('pretrained') or 'random initialisation'}")
        lines.append("- the full configuration is the run's `config.yaml`")
    else:
        lines.append("- not recorded (the model was exported without its run directory)")
    if classifier:
        lines += ["", "## Evaluation", ""]
        if metrics:
            names = list(model.class_names)
            recall = metrics.get("per_class_recall") or []
            lines += [f"Test split `{data.get('test_split')}`, {metrics.get('total', '?')} clips, "
                      f"{data.get('temporal_views')}x{data.get('spatial_views')} views (softmax-averaged). "
                      f"Model selection: {selected or 'not recorded'}.", "",
                      "| UAR | WAR | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names),
                      f"| {_pct(metrics.get('uar'), 2)} | {_pct(metrics.get('war'), 2)} | " +
                      " | ".join(_pct(r, 1) for r in recall) + " |", "",
                      "UAR: mean of the per-class recalls; WAR: accuracy."]
        else:
            lines.append("No evaluation recorded with this model (`hi2m evaluate` writes one).")
    lines += ["", LIMITS, "", "## How to load", ""]
    if library == "transformers":
        lines += ["```python", "from transformers import pipeline",
                  'pipe = pipeline("video-classification", model="path/to/this/folder")' if classifier else
                  'from transformers import VideoMAEForPreTraining\nmodel = VideoMAEForPreTraining.from_pretrained("path/to/this/folder")',
                  'print(pipe("face_video.mp4"))' if classifier else "", "```", "",
                  "The video processor samples frames uniformly over the clip and resizes whole frames; hi2m's "
                  "`predict` detects and crops the face first, which is what the model saw in training.",
                  "`hi2m.io.hf.load_transformers(folder)` turns this folder back into an hi2m model."]
    else:
        lines += ["```bash", "hi2m predict --model path/to/this/folder face_video.mp4" if classifier else
                  "hi2m finetune -c configs/finetune_dfew.yaml finetune.pretrained=path/to/this/folder", "```",
                  "```python", "import hi2m", "predictor = hi2m.load('path/to/this/folder')" if classifier else
                  "from hi2m.io.weights import load_pretrained; model = load_pretrained('path/to/this/folder')", "```"]
    return "\n".join(lines) + "\n"


def write_model_card(directory: str | Path, model, run_dir: str | Path | None = None, **kwargs) -> Path:
    """Write ``directory/README.md`` (atomically)."""
    path = Path(directory) / "README.md"
    text = model_card(model, run_dir, **kwargs)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path

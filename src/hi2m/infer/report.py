"""``hi2m predict ... --report report.html``: one self-contained HTML page a person opens and reads.

Per video: what it is (duration, frame rate, size, how much of it shows a face), the expression found most
(mean probability over the windows with a face), the class probabilities over time as an SVG plot, the
dominant expression per segment (consecutive windows with the same top class), and a thumbnail of the face
where each class peaked. Videos that failed, or that only partly got predictions, are listed first with
their reasons. The model and its classes head the page.

The page loads nothing: styles are inline, images are ``data:`` URIs, there is no script, and a
Content-Security-Policy says so to the browser (``default-src 'none'``), so a report opened years later,
offline, looks the same. Every name a user controls (file names, class names, the model folder) is
HTML-escaped, and with no script allowed a name like ``<img src=x onerror=alert(1)>.mp4`` is text.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hi2m.infer.result import FAILED, NO_FACE, PARTIAL, VideoResult, WindowPrediction
from hi2m.io.files import atomic_write

# a colour per class (cycled beyond 10): distinguishable, also in greyscale print by the dash patterns
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
PLOT_W, PLOT_H, PAD_L, PAD_R, PAD_T, PAD_B = 900, 220, 44, 12, 10, 28  # SVG geometry, px
THUMB = 96  # thumbnail side, px

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:980px;padding:16px;color:#222}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;margin:28px 0 6px;word-break:break-all} h3{font-size:16px;margin:18px 0 4px} h4{font-size:14px;margin:12px 0 4px}
.meta,.note{color:#555;font-size:13px} .status{font-size:12px;padding:1px 6px;border-radius:3px;margin-left:6px}
.ok{background:#dff3df} .partial{background:#fff2cc} .failed,.no_face{background:#f8d7d7}
table{border-collapse:collapse;margin:6px 0} td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee;font-size:13px}
.bar{display:inline-block;height:9px;background:#1f77b4;vertical-align:middle}
figure{display:inline-block;margin:4px 8px 4px 0;text-align:center;font-size:12px}
figure img{display:block;width:96px;height:96px;image-rendering:auto;border:1px solid #ccc}
svg text{font-size:11px;fill:#444} .legend span{margin-right:12px;font-size:13px;white-space:nowrap}
.swatch{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
section{border-top:1px solid #ddd;margin-top:18px}
"""


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute: ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def jpeg_data_uri(crop: np.ndarray, side: int = THUMB) -> str:
    """uint8 (H, W, 3) RGB -> a ``data:image/jpeg;base64,...`` URI of it resized to ``side`` x ``side``."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(crop)).resize((side, side), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def segments(windows: Sequence[WindowPrediction]) -> list[dict[str, Any]]:
    """Runs of consecutive classified windows with the same top class: start / end seconds (from the first
    window's start to the last one's end), the class, the windows and the class's mean probability in them.
    A window without a face ends a run."""
    out: list[dict[str, Any]] = []
    current: list[WindowPrediction] = []

    def close() -> None:
        if current:
            k = list(current[0].probs).index(max(current[0].probs))
            out.append({"start": current[0].start_time, "end": current[-1].end_time, "top": current[0].top,
                        "windows": len(current), "mean_prob": float(np.mean([w.probs[k] for w in current]))})
            current.clear()

    for w in windows:
        if not w.face or w.probs is None:
            close()
            continue
        if current and w.top != current[-1].top:
            close()
        current.append(w)
    close()
    return out


def _x(t: float, duration: float) -> float:
    return PAD_L + (PLOT_W - PAD_L - PAD_R) * (t / duration if duration > 0 else 0.0)


def _y(p: float) -> float:
    return PAD_T + (PLOT_H - PAD_T - PAD_B) * (1.0 - p)


def _ticks(duration: float) -> list[float]:
    """About six round time ticks over [0, duration]."""
    if duration <= 0:
        return [0.0]
    raw = duration / 6
    step = min((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if s >= raw), default=raw)
    return [i * step for i in range(int(duration // step) + 1)]


def probability_plot(result: VideoResult, windows: Sequence[WindowPrediction], duration: float) -> str:
    """The class probabilities of ``windows`` (one face's) over time (window centres) as an inline SVG: one
    ``polyline.series`` per class and face-run (``data-class``; its y is ``data-y0 - p * data-h``), broken
    where windows have no face; the time axis runs over the whole video (``duration`` seconds)."""
    inner_h = PLOT_H - PAD_T - PAD_B
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_W}" height="{PLOT_H}" '
             f'viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" class="plot" data-y0="{_y(0.0):.2f}" data-h="{inner_h}" '
             f'data-x0="{PAD_L}" data-w="{PLOT_W - PAD_L - PAD_R}" data-duration="{duration:.3f}">',
             f"<title>{esc('class probabilities over time')}</title>"]
    for p in (0.0, 0.5, 1.0):
        y = _y(p)
        parts.append(f'<line x1="{PAD_L}" x2="{PLOT_W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{p:g}</text>')
    for t in _ticks(duration):
        x = _x(t, duration)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{_y(0.0):.1f}" stroke="#f0f0f0"/>'
                     f'<text x="{x:.1f}" y="{PLOT_H - 10}" text-anchor="middle">{_clock(t)}</text>')
    for w in windows:  # shade the windows without a face
        if not w.face:
            x0, x1 = _x(w.start_time, duration), _x(w.end_time, duration)
            parts.append(f'<rect x="{x0:.1f}" y="{PAD_T}" width="{max(x1 - x0, 0.5):.1f}" height="{inner_h}" '
                         f'fill="#f4f4f4"><title>no face</title></rect>')
    for k, name in enumerate(result.class_names):
        colour, dash = PALETTE[k % len(PALETTE)], DASHES[(k // len(PALETTE)) % len(DASHES)]
        for run in _face_runs(windows):
            points = " ".join(f"{_x((w.start_time + w.end_time) / 2, duration):.2f},{_y(w.probs[k]):.2f}"
                              for w in run)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<polyline class="series" data-class="{esc(name)}" points="{points}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.6"{dash_attr}><title>{esc(name)}</title></polyline>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{PALETTE[k % len(PALETTE)]}"></i>{esc(n)}</span>'
                     for k, n in enumerate(result.class_names))
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _face_runs(windows: Sequence[WindowPrediction]) -> list[list[WindowPrediction]]:
    runs: list[list[WindowPrediction]] = [[]]
    for w in windows:
        if w.face and w.probs is not None:
            runs[-1].append(w)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}" if s % 1 else f"{int(m)}:{int(s):02d}"


def _video_section(i: int, result: VideoResult) -> str:
    name = Path(result.path).name
    out = [f'<section id="video-{i}"><h2>{esc(name)}<span class="status {esc(result.status)}">'
           f"{esc(result.status)}</span></h2>", f'<div class="meta">{esc(result.path)}</div>']
    info = result.info or {}
    facts = []
    if info.get("duration"):
        facts.append(f"{info['duration']:.1f} s")
    if info.get("fps"):
        facts.append(f"{info['fps']:.2f} fps")
    if info.get("width") and info.get("height"):
        facts.append(f"{info['width']}x{info['height']}")
    if result.windows:
        s = result.summary
        facts.append(f"{s['windows_with_face']} of {s['windows']} windows with a face, "
                     f"face in {100 * s['frame_face_coverage']:.0f}% of the sampled frames")
    if facts:
        out.append(f'<div class="meta">{esc(" · ".join(facts))}</div>')
    if result.message:
        out.append(f'<p class="note">{esc(result.message)}</p>')
    if not result.ok:
        return "".join(out) + "</section>"
    duration = max((w.end_time for w in result.windows), default=0.0)
    if result.faces is None:
        out.append(_face_part(result, None, result.summary, duration))
    else:
        out.append(f'<p>{len(result.faces)} face(s) tracked, each with its own id for the whole video.</p>')
        for face in result.faces:
            s = result.face_summary(face)
            when = (f" · seen from {_clock(s['first_time'])} to {_clock(s['last_time'])}"
                    if s.get("first_time") is not None else "")
            out.append(f'<h3 class="face" id="video-{i}-face-{face}">Face {face}</h3><div class="meta">'
                       f"{s['windows_with_face']} of {s['windows']} windows classified{esc(when)}</div>")
            if s["windows_with_face"] == 0:
                out.append('<p class="note">This face was not in view long enough for one window: no prediction.</p>')
                continue
            out.append(_face_part(result, face, s, duration))
    return "".join(out) + "</section>"


def _face_part(result: VideoResult, face: int | None, summary: dict[str, Any], duration: float) -> str:
    """Summary table, plot, segments and peak thumbnails of one face (None: the one-face mode)."""
    windows = result.windows_of(face)
    out = [f"<p>Expression found most: <b>{esc(summary['dominant'])}</b> (highest mean probability over the "
           "windows with a face)</p><table><tr><th>class</th><th>mean probability</th><th></th>"
           "<th>share of windows on top</th></tr>"]
    for name_k in result.class_names:
        p = summary["mean_probs"][name_k]
        share = summary["window_share"][name_k]
        out.append(f'<tr><td>{esc(name_k)}</td><td>{p:.3f}</td><td><span class="bar" style="width:{120 * p:.0f}px">'
                   f"</span></td><td>{100 * share:.0f}%</td></tr>")
    out.append("</table><h4>Over time</h4>" + probability_plot(result, windows, duration))
    out.append("<h4>Segments</h4><table><tr><th>from</th><th>to</th><th>expression</th><th>windows</th>"
               "<th>mean probability</th></tr>")
    for sg in segments(windows):
        out.append(f'<tr class="segment"><td>{_clock(sg["start"])}</td><td>{_clock(sg["end"])}</td>'
                   f"<td>{esc(sg['top'])}</td><td>{sg['windows']}</td><td>{sg['mean_prob']:.3f}</td></tr>")
    out.append("</table>")
    chance = 1.0 / max(len(result.class_names), 1)
    peaks = {n: result.peaks[(face or 0, n)] for n in result.class_names if (face or 0, n) in result.peaks}
    shown = [n for n in result.class_names if n in peaks and peaks[n].prob >= chance]
    if shown:
        out.append("<h4>Where each expression peaked</h4><div>")
        for name_k in shown:
            peak = peaks[name_k]
            out.append(f'<figure class="peak" data-class="{esc(name_k)}"><img alt="{esc(name_k)} at '
                       f'{_clock(peak.time)}" src="{jpeg_data_uri(peak.crop)}"><figcaption>{esc(name_k)} '
                       f"{peak.prob:.2f}<br>at {_clock(peak.time)}</figcaption></figure>")
        out.append("</div>")
        never = [n for n in result.class_names if n not in shown]
        if never:
            out.append(f'<p class="note">Never above chance ({chance:.2f}): {esc(", ".join(never))}</p>')
    return "".join(out)


def render(results: Sequence[VideoResult], model: str, class_names: Sequence[str]) -> str:
    """The whole report as one HTML document (see the module docstring)."""
    problems = [r for r in results if r.status in (FAILED, NO_FACE, PARTIAL)]
    counts = {s: sum(r.status == s for r in results) for s in ("ok", PARTIAL, NO_FACE, FAILED)}
    head = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            "style-src 'unsafe-inline'\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>hi2m predict report</title><style>{CSS}</style></head><body>")
    out = [head, "<h1>Facial expressions over time</h1>",
           f'<div class="meta">model <b>{esc(model)}</b> · classes: {esc(", ".join(class_names))} · '
           f"{len(results)} video(s): " + esc(", ".join(f"{n} {s}" for s, n in counts.items() if n)) +
           f" · written {esc(time.strftime('%Y-%m-%d %H:%M'))} by hi2m predict</div>",
           '<p class="note">Probabilities are the model\'s, per sliding window of the video; a window counts '
           "when a face is tracked in enough of its frames. They describe facial movement, not what a person "
           "feels.</p>"]
    if problems:
        out.append('<h2>Videos without full predictions</h2><table id="problems"><tr><th>video</th><th>status</th>'
                   "<th>reason</th></tr>")
        for r in problems:
            out.append(f"<tr><td>{esc(Path(r.path).name)}</td><td>{esc(r.status)}</td><td>{esc(r.message)}</td></tr>")
        out.append("</table>")
    out += [_video_section(i, r) for i, r in enumerate(results)]
    out.append("</body></html>\n")
    return "".join(out)


class ReportWriter:
    """Keeps the results of a predict run and rewrites the report atomically after each video, so an
    interrupted batch leaves a complete page of every finished video."""

    def __init__(self, path: str | Path, model: str, class_names: Sequence[str]) -> None:
        self.path, self.model, self.class_names = Path(path), model, tuple(class_names)
        self.results: list[VideoResult] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    def add(self, result: VideoResult) -> None:
        self.results.append(result)
        self._write()

    def _write(self) -> None:
        text = render(self.results, self.model, self.class_names)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


"""The reading screen's image viewer: one self-contained HTML page (no network resources) that shows a
case's original image file at its full resolution, fitted to the frame, with zoom (wheel, buttons,
double click) and pan (drag). In the aided phase a second layer holds the study's heat map drawn over
the same original (``overlays/<case>.jpg``, the original's framing), hidden until the reader ticks
the "heat map" box. "1:1" shows one image pixel per CSS pixel (100 %), also for an image smaller than
the frame.

The page is rendered by ``st.iframe`` (an iframe, so its script runs). It holds nothing
but the image bytes it is given: in the unaided phase no heat map, no label and no probability.
No Streamlit here: plain values in, an HTML string out.
"""

from __future__ import annotations

import base64
import html

MIME_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
CSS_CLASS = "reader-study-image"

# No decimal literals below: a probability printed with 3-4 digits must be findable in the page by the
# blinding tests without false alarms from the viewer's own code.
_STYLE = """
html, body { margin: 0; height: 100%; background: #161616; overflow: hidden; font-family: sans-serif; }
#stage { position: absolute; inset: 0; overflow: hidden; cursor: grab; touch-action: none; }
#stage.dragging { cursor: grabbing; }
#frame { position: absolute; left: 0; top: 0; }
#frame img { position: absolute; left: 0; top: 0; width: 100%; height: 100%; display: block;
             user-select: none; -webkit-user-drag: none; }
#tools { position: absolute; right: 8px; top: 8px; display: flex; gap: 4px; align-items: center;
         background: rgba(0, 0, 0, .6); padding: 4px 6px; border-radius: 6px; color: #eee; font-size: 13px; }
#tools button { min-width: 34px; height: 28px; border: 1px solid #888; border-radius: 4px; background: #2b2b2b;
                color: #eee; font-size: 14px; cursor: pointer; }
#tools label { margin-left: 6px; cursor: pointer; }
#zoom-level { min-width: 44px; text-align: right; }
"""

_SCRIPT = """
const stage = document.getElementById("stage"), frame = document.getElementById("frame");
const lesion = document.getElementById("lesion"), heat = document.getElementById("heat");
const level = document.getElementById("zoom-level");
let scale = 1, fit = 1, x = 0, y = 0, drag = null;
function apply() {
  frame.style.width = (lesion.naturalWidth * scale) + "px";
  frame.style.height = (lesion.naturalHeight * scale) + "px";
  frame.style.transform = "translate(" + x + "px," + y + "px)";
  level.textContent = Math.round(100 * scale) + "%";
}
function fitToStage() {
  if (!lesion.naturalWidth) return;
  fit = Math.min(stage.clientWidth / lesion.naturalWidth, stage.clientHeight / lesion.naturalHeight);
  scale = fit;
  x = (stage.clientWidth - lesion.naturalWidth * scale) / 2;
  y = (stage.clientHeight - lesion.naturalHeight * scale) / 2;
  apply();
}
function zoomAt(factor, px, py) {
  const next = Math.min(Math.max(scale * factor, Math.min(fit, 1)), Math.max(fit, 1) * 8);
  x = px - (px - x) * next / scale;
  y = py - (py - y) * next / scale;
  scale = next;
  if (scale === fit) { fitToStage(); } else { apply(); }
  stage.dataset.scale = String(scale);
}
function centre() { return [stage.clientWidth / 2, stage.clientHeight / 2]; }
stage.addEventListener("wheel", (event) => {
  event.preventDefault();
  const box = stage.getBoundingClientRect();
  zoomAt(Math.exp(-event.deltaY / 500), event.clientX - box.left, event.clientY - box.top);
}, {passive: false});
stage.addEventListener("dblclick", (event) => {
  const box = stage.getBoundingClientRect();
  if (scale > fit) { fitToStage(); } else { zoomAt(2, event.clientX - box.left, event.clientY - box.top); }
});
stage.addEventListener("pointerdown", (event) => {
  drag = {x: event.clientX - x, y: event.clientY - y};
  stage.setPointerCapture(event.pointerId);
  stage.classList.add("dragging");
});
stage.addEventListener("pointermove", (event) => {
  if (!drag) return;
  x = event.clientX - drag.x;
  y = event.clientY - drag.y;
  apply();
});
function release() { drag = null; stage.classList.remove("dragging"); }
stage.addEventListener("pointerup", release);
stage.addEventListener("pointercancel", release);
document.getElementById("zoom-in").onclick = () => zoomAt(3 / 2, ...centre());
document.getElementById("zoom-out").onclick = () => zoomAt(2 / 3, ...centre());
document.getElementById("fit").onclick = fitToStage;
// 1:1 is one image pixel per CSS pixel (scale 1), also for an image smaller than the frame
document.getElementById("actual").onclick = () => zoomAt(1 / scale, ...centre());
const toggle = document.getElementById("show-heat");
if (toggle) { toggle.onchange = () => { heat.style.display = toggle.checked ? "block" : "none"; }; }
lesion.addEventListener("load", fitToStage);
window.addEventListener("resize", fitToStage);
if (lesion.complete) fitToStage();
"""


def data_uri(data: bytes, suffix: str) -> str:
    """``data:image/...;base64,...`` of an image file's own bytes (``suffix`` picks the MIME type)."""
    return f"data:{MIME_TYPES.get(suffix.lower(), 'image/jpeg')};base64,{base64.b64encode(data).decode()}"


def viewer_html(case_id: str, image: bytes, image_suffix: str, heatmap: bytes | None = None,
                heatmap_suffix: str = ".jpg") -> str:
    """The viewer page for one case: ``image`` the original file's bytes (shown as they are, so the
    browser's image has the file's own size); ``heatmap`` (aided phase only) the heat map over that
    original, stretched onto the same box."""
    heat_layer = (f'<img id="heat" alt="heat map over the image" style="display: none" '
                  f'src="{data_uri(heatmap, heatmap_suffix)}">'
                  if heatmap is not None else '<span id="heat"></span>')
    heat_toggle = ('<label><input type="checkbox" id="show-heat"> heat map</label>'
                   if heatmap is not None else "")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{_STYLE}</style></head><body>"
        f'<div id="stage" class="{CSS_CLASS}" data-case="{html.escape(case_id)}">'
        f'<div id="frame"><img id="lesion" alt="lesion" src="{data_uri(image, image_suffix)}">{heat_layer}</div>'
        f"</div>"
        f'<div id="tools"><button id="zoom-out" title="zoom out">&minus;</button>'
        f'<button id="zoom-in" title="zoom in">+</button><button id="fit" title="whole image">Fit</button>'
        f'<button id="actual" title="1:1: one image pixel per CSS pixel">1:1</button>'
        f'<span id="zoom-level"></span>{heat_toggle}</div>'
        f"<script>{_SCRIPT}</script></body></html>"
    )

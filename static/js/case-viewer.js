// Case page: per photo, the heatmap overlay (toggle and opacity) and zoom; in the decision form,
// only the actions that fit the chosen outcome are offered (the server checks the same pairs).
"use strict";

// Boxes and crops are placed from data-style ("left:12.5%;top:…"): set through the CSSOM, which the
// Content-Security-Policy allows, where a style attribute would need 'unsafe-inline'.
document.querySelectorAll("[data-style]").forEach((element) => {
  element.dataset.style.split(";").forEach((declaration) => {
    const [name, value] = declaration.split(":");
    if (name && value) element.style.setProperty(name.trim(), value.trim());
  });
});

document.querySelectorAll("[data-viewer]").forEach((viewer) => {
  const toggle = viewer.querySelector("[data-heatmap-toggle]");
  const opacity = viewer.querySelector("[data-heatmap-opacity]");
  const layer = viewer.querySelector(".heatmap-layer");
  if (toggle && opacity && layer) {
    const readout = viewer.querySelector("[data-opacity-readout]");
    const apply = () => {
      layer.hidden = !toggle.checked;
      layer.style.opacity = opacity.value / 100;
      readout.textContent = `${opacity.value}%`;
    };
    toggle.addEventListener("change", apply);
    opacity.addEventListener("input", () => {
      toggle.checked = true;
      apply();
    });
    apply();
  }
  const zoom = viewer.querySelector("[data-zoom]");
  const zoomReadout = viewer.querySelector("[data-zoom-readout]");
  // Each view keeps its 1× size and shape; zooming scrolls it so the lesion box (data-focus-x/y,
  // fractions of the image) stays in the middle.
  zoom.addEventListener("input", () => {
    viewer.style.setProperty("--zoom", zoom.value / 100);
    zoomReadout.textContent = `${zoom.value / 100}×`;
    viewer.querySelectorAll(".zoom-box").forEach((box) => {
      const focusX = parseFloat(box.dataset.focusX || "0.5");
      const focusY = parseFloat(box.dataset.focusY || "0.5");
      box.scrollLeft = focusX * box.scrollWidth - box.clientWidth / 2;
      box.scrollTop = focusY * box.scrollHeight - box.clientHeight / 2;
    });
  });
});

const pairs = document.getElementById("actions-for-outcome");
const decisionForm = document.querySelector(".decision-form");
if (pairs && decisionForm) {
  const actionsFor = JSON.parse(pairs.textContent);
  const actionsBox = decisionForm.querySelector("[data-actions]");
  const update = () => {
    const outcome = decisionForm.querySelector("input[name=outcome]:checked");
    if (!outcome) return;
    const allowed = actionsFor[outcome.value] || [];
    actionsBox.hidden = allowed.length === 0;
    decisionForm.querySelectorAll("input[name=action]").forEach((input) => {
      input.disabled = !allowed.includes(input.value);
      input.closest("label").classList.toggle("unavailable", input.disabled);
      if (input.disabled) input.checked = false;
      if (allowed.length === 1 && !input.disabled) input.checked = true;
    });
  };
  decisionForm.querySelectorAll("input[name=outcome]").forEach((input) => input.addEventListener("change", update));
  update();
}

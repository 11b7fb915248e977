// herd.js: small conveniences for the nodes table. Every page works
// without them; the server does all the work.
"use strict";

// Styles for controls that only work with this script (.js .select-all).
document.documentElement.classList.add("js");

const nodeBoxes = 'tbody input[type="checkbox"][name="node"]';

// The header checkbox ticks or clears every node on the page.
document.addEventListener("change", (ev) => {
  const all = ev.target.closest("input.select-all");
  if (!all) return;
  for (const box of all.closest("table").querySelectorAll(nodeBoxes)) {
    box.checked = all.checked;
  }
});

// Shift-click ticks or clears every node between two clicks.
let lastBox = null;
document.addEventListener("click", (ev) => {
  const box = ev.target.closest(nodeBoxes);
  if (!box) return;
  if (ev.shiftKey && lastBox && lastBox !== box && lastBox.isConnected) {
    const boxes = Array.from(box.closest("tbody").querySelectorAll(nodeBoxes));
    const from = boxes.indexOf(lastBox);
    const to = boxes.indexOf(box);
    if (from >= 0 && to >= 0) {
      for (const b of boxes.slice(Math.min(from, to), Math.max(from, to) + 1)) {
        b.checked = box.checked;
      }
    }
  }
  lastBox = box;
});

/* Drag-to-draw box around the lesion (optional). Mouse, pen and touch via Pointer Events.
 * Coordinates written to the form's roi_x0..roi_y1 inputs are pixels of the upright photo:
 * browsers apply EXIF orientation when decoding an <img> (image-orientation: from-image),
 * so naturalWidth/naturalHeight and drawImage are already in upright coordinates. */
(function () {
  "use strict";

  var MAX_HEIGHT_RATIO = 0.7; // of the viewport

  function setUp(editor) {
    var form = editor.closest("form");
    var minSide = Number(editor.dataset.minSide); // the server's rule (triage.images.MIN_ROI_SIDE)
    var canvas = editor.querySelector(".roi-canvas");
    var readout = editor.querySelector(".roi-readout");
    var inputs = ["roi_x0", "roi_y0", "roi_x1", "roi_y1"].map(function (name) {
      return form.querySelector('input[name="' + name + '"]');
    });
    var fileInput = form.querySelector('input[type="file"]');
    var image = null;
    var box = null; // {x0, y0, x1, y1} in image pixels
    var dragStart = null;
    var objectUrl = null;

    function draw() {
      if (!image) return;
      var available = editor.clientWidth;
      if (!available) return; // inside a closed <details>; redrawn when it opens
      var scale = Math.min(available / image.naturalWidth, (window.innerHeight * MAX_HEIGHT_RATIO) / image.naturalHeight, 1);
      canvas.width = Math.round(image.naturalWidth * scale);
      canvas.height = Math.round(image.naturalHeight * scale);
      var context = canvas.getContext("2d");
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      if (!box) return;
      var x = box.x0 * scale, y = box.y0 * scale, w = (box.x1 - box.x0) * scale, h = (box.y1 - box.y0) * scale;
      context.lineWidth = 3;
      context.strokeStyle = "#ffffff";
      context.strokeRect(x, y, w, h);
      context.lineWidth = 2;
      context.strokeStyle = "#0b57d0";
      context.setLineDash([6, 4]);
      context.strokeRect(x, y, w, h);
    }

    function toImagePoint(event) {
      var rect = canvas.getBoundingClientRect();
      var x = ((event.clientX - rect.left) / rect.width) * image.naturalWidth;
      var y = ((event.clientY - rect.top) / rect.height) * image.naturalHeight;
      return {
        x: Math.round(Math.min(Math.max(x, 0), image.naturalWidth)),
        y: Math.round(Math.min(Math.max(y, 0), image.naturalHeight))
      };
    }

    function boxFrom(a, b) {
      return { x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y) };
    }

    function commit() {
      var values = box ? [box.x0, box.y0, box.x1, box.y1] : ["", "", "", ""];
      inputs.forEach(function (input, index) { input.value = values[index]; });
      readout.textContent = box
        ? "Box drawn: " + (box.x1 - box.x0) + " × " + (box.y1 - box.y0) + " pixels."
        : "No box: the whole photo will be used.";
    }

    function clear() {
      box = null;
      commit();
      draw();
    }

    function show(url, initialBox) {
      var next = new Image();
      next.onload = function () {
        image = next;
        box = initialBox;
        editor.hidden = false;
        commit();
        draw();
      };
      next.onerror = function () { hide(); }; // e.g. a format this browser cannot preview
      next.src = url;
    }

    function hide() {
      image = null;
      editor.hidden = true;
      box = null;
      commit();
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (!image) return;
      canvas.setPointerCapture(event.pointerId);
      dragStart = toImagePoint(event);
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!dragStart) return;
      box = boxFrom(dragStart, toImagePoint(event));
      draw();
    });
    function finish(event) {
      if (!dragStart) return;
      box = boxFrom(dragStart, toImagePoint(event));
      dragStart = null;
      if (box.x1 - box.x0 < minSide || box.y1 - box.y0 < minSide) box = null;
      commit();
      draw();
    }
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    editor.querySelector(".roi-clear").addEventListener("click", clear);
    new ResizeObserver(draw).observe(editor);

    if (editor.dataset.imageUrl) {
      var initial = editor.dataset.roi ? editor.dataset.roi.split(",").map(Number) : null;
      show(editor.dataset.imageUrl, initial && { x0: initial[0], y0: initial[1], x1: initial[2], y1: initial[3] });
    } else if (fileInput) {
      fileInput.addEventListener("change", function () {
        if (objectUrl) URL.revokeObjectURL(objectUrl);
        objectUrl = null;
        var files = fileInput.files;
        // A box only makes sense for one photo; several photos each get an automatic box.
        if (files.length === 1 && files[0].type.indexOf("image/") === 0) {
          objectUrl = URL.createObjectURL(files[0]);
          show(objectUrl, null);
        } else {
          hide();
        }
      });
    }
  }

  document.querySelectorAll(".roi-editor").forEach(setUp);
})();

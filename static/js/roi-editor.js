/* Marking the lesion on a photo (optional). Mouse, pen and touch via Pointer Events.
 *  - Tap the lesion: the tap point goes to the form's tap_x/tap_y inputs; the server turns it into
 *    a box sized from the photo (one rule, in Python) and this script only shows that box, asking
 *    the server for it (data-tap-url).
 *  - Drag: draws a box (roi_x0..roi_y1); dragging inside an existing box moves it. A box smaller
 *    than data-min-side photo pixels (from the server) counts as a tap at its centre.
 * Coordinates are pixels of the upright photo: browsers apply EXIF orientation when decoding an
 * <img> (image-orientation: from-image), so naturalWidth/naturalHeight and drawImage are upright. */
(function () {
  "use strict";

  var TAP_TOLERANCE = 10; // CSS pixels a finger may wander and still be a tap
  var MAX_HEIGHT_RATIO = 0.7; // of the viewport

  function setUp(editor) {
    var form = editor.closest("form");
    var canvas = editor.querySelector(".roi-canvas");
    var readout = editor.querySelector(".roi-readout");
    var minSide = Number(editor.dataset.minSide);
    var tapUrl = editor.dataset.tapUrl;
    var text = editor.dataset; // translated messages: textTapBox, textDrawnBox ({width}, {height}), ...
    function sized(message, b) {
      return message.replace("{width}", b.x1 - b.x0).replace("{height}", b.y1 - b.y0);
    }
    function field(name) { return form.querySelector('input[name="' + name + '"]'); }
    var boxInputs = ["roi_x0", "roi_y0", "roi_x1", "roi_y1"].map(field);
    var tapInputs = ["tap_x", "tap_y"].map(field);
    var fileInput = form.querySelector('input[type="file"]');
    var image = null;
    var box = null; // {x0, y0, x1, y1} in image pixels: drawn, moved, or the box of a tap
    var tap = null; // {x, y} when the box stands for a tap
    var edited = false; // a box shown from the server is only sent once the user changes it
    var gesture = null; // {screenX, screenY, start, moving, original, dragged}
    var objectUrl = null;
    var tapRequest = 0;

    function draw() {
      if (!image) return;
      var available = editor.clientWidth;
      if (!available) return; // inside a closed <details>; redrawn when it opens
      var scale = Math.min(available / image.naturalWidth, (window.innerHeight * MAX_HEIGHT_RATIO) / image.naturalHeight, 1);
      canvas.width = Math.round(image.naturalWidth * scale);
      canvas.height = Math.round(image.naturalHeight * scale);
      var context = canvas.getContext("2d");
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      if (box) {
        var x = box.x0 * scale, y = box.y0 * scale, w = (box.x1 - box.x0) * scale, h = (box.y1 - box.y0) * scale;
        context.lineWidth = 3;
        context.strokeStyle = "#ffffff";
        context.strokeRect(x, y, w, h);
        context.lineWidth = 2;
        context.strokeStyle = "#0b57d0";
        context.setLineDash([6, 4]);
        context.strokeRect(x, y, w, h);
        context.setLineDash([]);
      }
      if (tap) {
        context.beginPath();
        context.arc(tap.x * scale, tap.y * scale, 6, 0, 2 * Math.PI);
        context.fillStyle = "#0b57d0";
        context.fill();
        context.lineWidth = 2;
        context.strokeStyle = "#ffffff";
        context.stroke();
      }
    }

    function toImagePoint(event) {
      var rect = canvas.getBoundingClientRect();
      var x = ((event.clientX - rect.left) / rect.width) * image.naturalWidth;
      var y = ((event.clientY - rect.top) / rect.height) * image.naturalHeight;
      return {
        x: Math.round(Math.min(Math.max(x, 0), image.naturalWidth - 1)),
        y: Math.round(Math.min(Math.max(y, 0), image.naturalHeight - 1))
      };
    }

    function boxFrom(a, b) {
      return { x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y) };
    }

    function inside(point, b) {
      return b && point.x >= b.x0 && point.x <= b.x1 && point.y >= b.y0 && point.y <= b.y1;
    }

    function moved(original, start, point) {
      var dx = Math.min(Math.max(point.x - start.x, -original.x0), image.naturalWidth - original.x1);
      var dy = Math.min(Math.max(point.y - start.y, -original.y0), image.naturalHeight - original.y1);
      return { x0: original.x0 + dx, y0: original.y0 + dy, x1: original.x1 + dx, y1: original.y1 + dy };
    }

    function commit() {
      var boxValues = box && !tap && edited ? [box.x0, box.y0, box.x1, box.y1] : ["", "", "", ""];
      var tapValues = tap ? [tap.x, tap.y] : ["", ""];
      boxInputs.forEach(function (input, index) { input.value = boxValues[index]; });
      tapInputs.forEach(function (input, index) { input.value = tapValues[index]; });
      if (tap && box) {
        readout.textContent = sized(text.textTapBox, box);
      } else if (tap) {
        readout.textContent = text.textTapped;
      } else if (box && !edited) {
        readout.textContent = text.textCurrentBox;
      } else if (box) {
        readout.textContent = sized(text.textDrawnBox, box);
      } else {
        readout.textContent = text.textNothing;
      }
    }

    function markTap(point) {
      edited = true;
      tap = point;
      box = null;
      commit();
      draw();
      var request = ++tapRequest;
      var query = "?x=" + point.x + "&y=" + point.y + "&width=" + image.naturalWidth + "&height=" + image.naturalHeight;
      fetch(tapUrl + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          if (request !== tapRequest || tap !== point) return; // a newer mark replaced this one
          if (answer.box) {
            box = { x0: answer.box[0], y0: answer.box[1], x1: answer.box[2], y1: answer.box[3] };
            commit();
          } else {
            readout.textContent = answer.error || text.textTapFailed;
          }
          draw();
        })
        .catch(function () {
          // Offline: the tap itself is still sent with the photo and sized by the server.
          if (request === tapRequest && tap === point) readout.textContent = text.textTapOffline;
        });
    }

    function clear() {
      edited = true;
      tapRequest++;
      box = null;
      tap = null;
      commit();
      draw();
    }

    function show(url, initialBox) {
      var next = new Image();
      next.onload = function () {
        image = next;
        box = initialBox;
        edited = false;
        tap = null;
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
      tap = null;
      commit();
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (!image) return;
      canvas.setPointerCapture(event.pointerId);
      var start = toImagePoint(event);
      gesture = {
        screenX: event.clientX, screenY: event.clientY, start: start,
        moving: inside(start, box) && !tap, original: box, dragged: false
      };
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!gesture) return;
      if (!gesture.dragged && Math.hypot(event.clientX - gesture.screenX, event.clientY - gesture.screenY) < TAP_TOLERANCE) return;
      gesture.dragged = true;
      edited = true;
      tapRequest++;
      tap = null;
      var point = toImagePoint(event);
      box = gesture.moving ? moved(gesture.original, gesture.start, point) : boxFrom(gesture.start, point);
      draw();
    });
    function finish(event) {
      if (!gesture) return;
      var done = gesture;
      gesture = null;
      if (event.type === "pointercancel") {
        if (done.dragged) commit();
        return;
      }
      if (!done.dragged) {
        markTap(done.start);
        return;
      }
      var point = toImagePoint(event);
      box = done.moving ? moved(done.original, done.start, point) : boxFrom(done.start, point);
      if (box.x1 - box.x0 < minSide || box.y1 - box.y0 < minSide) {
        markTap({ x: Math.round((box.x0 + box.x1) / 2), y: Math.round((box.y0 + box.y1) / 2) });
        return;
      }
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
        // The lesion can be marked on one photo only; several photos each get an automatic box.
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

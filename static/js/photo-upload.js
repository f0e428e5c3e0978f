/* Sends the chosen photos one by one with a progress bar each, shrinking very large photos first
 * (canvas, where the browser can decode the file; HEIC on most non-Apple browsers cannot and is
 * sent as it is, the server decodes it). Without XMLHttpRequest or FormData the form posts normally.
 * A box drawn (or a point tapped) on a single photo is scaled with it. */
(function () {
  "use strict";

  var MAX_SIDE = 3000; // pixels: plenty for the model and the clinician, far below the server's limit
  var JPEG_QUALITY = 0.92;
  var form = document.getElementById("upload-form");
  var list = document.getElementById("upload-progress");
  if (!form || !list || !window.FormData || !window.XMLHttpRequest) return;
  var fileInput = form.querySelector('input[type="file"]');
  var text = list.dataset;

  function shrink(file) {
    if (!window.createImageBitmap || !/^image\/(jpeg|png|webp)$/.test(file.type)) {
      return Promise.resolve({ blob: file, scale: 1 });
    }
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
      var scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
      if (scale >= 1) {
        bitmap.close();
        return { blob: file, scale: 1 };
      }
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          resolve(blob ? { blob: blob, scale: scale } : { blob: file, scale: 1 });
        }, "image/jpeg", JPEG_QUALITY);
      });
    }).catch(function () { return { blob: file, scale: 1 }; });
  }

  function row(file) {
    var item = document.createElement("li");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    var state = document.createElement("span");
    state.className = "upload-state";
    state.textContent = text.textPreparing;
    item.append(name, bar, state);
    list.appendChild(item);
    return { item: item, bar: bar, state: state };
  }

  function send(file, shown) {
    return shrink(file).then(function (shrunk) {
      var data = new FormData(form);
      data.delete(fileInput.name);
      var name = shrunk.scale < 1 ? file.name.replace(/\.[^.]*$/, "") + ".jpg" : file.name;
      data.append(fileInput.name, shrunk.blob, name);
      if (shrunk.scale < 1) {
        ["roi_x0", "roi_y0", "roi_x1", "roi_y1", "tap_x", "tap_y"].forEach(function (field) {
          var value = data.get(field);
          if (value) data.set(field, String(Math.round(Number(value) * shrunk.scale)));
        });
      }
      return new Promise(function (resolve) {
        var request = new XMLHttpRequest();
        request.open("POST", form.action);
        request.setRequestHeader("Accept", "application/json");
        request.upload.onprogress = function (event) {
          if (event.lengthComputable) shown.bar.value = Math.round((event.loaded / event.total) * 100);
        };
        request.onload = function () {
          var answer = {};
          try { answer = JSON.parse(request.responseText); } catch (error) { answer = {}; }
          var ok = request.status === 201;
          shown.bar.value = ok ? 100 : shown.bar.value;
          shown.state.textContent = ok ? text.textSent : text.textFailed + ": " + (answer.errors || []).join(" ");
          shown.item.className = ok ? "sent" : "failed";
          resolve(ok);
        };
        request.onerror = function () {
          shown.state.textContent = text.textFailed + ": " + text.textNetwork;
          shown.item.className = "failed";
          resolve(false);
        };
        shown.state.textContent = text.textSending;
        request.send(data);
      });
    });
  }

  form.addEventListener("submit", function (event) {
    if (!form.checkValidity() || !fileInput.files.length) return; // the browser or the server explains
    event.preventDefault();
    var files = Array.prototype.slice.call(fileInput.files);
    var button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    list.hidden = false;
    list.textContent = "";
    var results = [];
    files.reduce(function (previous, file) {
      var shown = row(file);
      return previous.then(function () {
        return send(file, shown).then(function (ok) { results.push(ok); });
      });
    }, Promise.resolve()).then(function () {
      button.disabled = false;
      if (results.every(Boolean)) {
        window.location.href = window.location.pathname + "?sent=" + results.length + "#photos";
      }
    });
  });
})();

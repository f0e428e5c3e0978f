/* Keeps the patient's photo status badges current without a reload (status only, no scores), and
   shows each photo once the worker has prepared it (its hidden details removed). */
(function () {
  "use strict";

  var POLL_MS = 3000;
  var RETRY_MS = 10000;
  var list = document.getElementById("photo-list");
  if (!list) return;

  function badges() {
    return Array.prototype.slice.call(list.querySelectorAll("[data-photo-status]"));
  }

  function anyUnsettled() {
    return badges().some(function (badge) { return badge.dataset.settled !== "true"; });
  }

  function update(photos) {
    photos.forEach(function (photo) {
      var badge = list.querySelector('[data-photo-status="' + photo.id + '"]');
      if (!badge) return;
      var text = photo.detail ? photo.label + ": " + photo.detail : photo.label;
      if (badge.textContent !== text) badge.textContent = text;
      badge.className = "badge status-" + photo.status;
      badge.dataset.settled = photo.settled ? "true" : "false";
      var retake = list.querySelector('[data-retake="' + photo.id + '"]');
      if (retake) retake.hidden = !photo.retake_needed;
      var preparing = list.querySelector('[data-preparing="' + photo.id + '"]');
      if (preparing && photo.image_url) showPhoto(preparing, photo.image_url);
    });
  }

  function showPhoto(placeholder, url) {
    var image = document.createElement("img");
    image.src = url;
    image.alt = placeholder.dataset.alt;
    image.loading = "lazy";
    placeholder.replaceWith(image);
  }

  function poll() {
    if (document.hidden) {
      window.setTimeout(poll, POLL_MS);
      return;
    }
    fetch(list.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (data) {
        update(data.photos);
        if (anyUnsettled()) window.setTimeout(poll, POLL_MS);
      })
      .catch(function () { window.setTimeout(poll, RETRY_MS); });
  }

  if (anyUnsettled()) window.setTimeout(poll, POLL_MS);
})();

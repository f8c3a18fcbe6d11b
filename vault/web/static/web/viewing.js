// The viewing page: plays the watermarked stream and audits each seek. A finished stream
// is the <video>'s own source (byte ranges); one still being encoded is fed to it through
// Media Source Extensions as it arrives, so the first frame shows within a second.
// While the stream is prepared the page asks the server every second how it goes: a
// stream that could not be prepared is said on the page (the server audits it).
(function () {
  "use strict";
  var video = document.getElementById("player");
  var form = document.getElementById("end-form");
  var failure = document.getElementById("viewing-error");
  if (!video || !form || !failure) { return; }
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var src = video.dataset.src;
  var failed = false;
  var asking = null;

  function fail(reason) {
    if (failed) { return; }
    failed = true;
    failure.textContent = reason;
    failure.hidden = false;
    video.pause();
    video.hidden = true;
  }

  // The stream's state: {done, error}. Asked again while the stream is not done.
  function ask() {
    if (failed) { return; }
    window.clearTimeout(asking);
    fetch(video.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (state) {
        if (!state) { return; }
        if (state.error) { fail(state.error); return; }
        if (!state.done) { asking = window.setTimeout(ask, 1000); }
      })
      .catch(function () { asking = window.setTimeout(ask, 3000); });
  }

  function progressive() {
    var ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", function () {
      var sb = ms.addSourceBuffer(video.dataset.mime);
      var queue = [];
      var finished = false;
      var duration = parseFloat(video.dataset.duration);
      function pump() {
        if (sb.updating || failed) { return; }
        if (queue.length) { sb.appendBuffer(queue.shift()); return; }
        if (finished && ms.readyState === "open") { ms.endOfStream(); }
      }
      sb.addEventListener("updateend", function () {
        if (duration > 0 && ms.duration !== duration && !sb.updating && !finished) {
          try { ms.duration = duration; } catch (e) { /* set once data allows it */ }
        }
        pump();
      });
      fetch(src, {credentials: "same-origin", cache: "no-store"}).then(function (resp) {
        if (!resp.ok) { ask(); return; }
        var reader = resp.body.getReader();
        function next() {
          return reader.read().then(function (part) {
            if (part.done) { finished = true; pump(); ask(); return; }
            queue.push(part.value);
            pump();
            return next();
          });
        }
        return next();
      }).catch(ask);
    });
  }

  if (video.dataset.complete === "1") {
    video.src = src;
  } else {
    if (window.MediaSource && MediaSource.isTypeSupported(video.dataset.mime)) {
      progressive();
    } else {
      video.src = src;  // plays once the stream is complete
    }
    ask();
  }
  video.addEventListener("error", ask);
  video.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  video.addEventListener("seeked", function () {
    var body = new URLSearchParams({event: "seek", position: String(video.currentTime)});
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": token}});
  });
})();

// The viewing page: plays the watermarked stream and audits each seek. A finished stream
// is the <video>'s own source (byte ranges); one still being encoded is fed to it through
// Media Source Extensions as it arrives, so the first frame shows within a second.
(function () {
  "use strict";
  var video = document.getElementById("player");
  var form = document.getElementById("end-form");
  if (!video || !form) { return; }
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var src = video.dataset.src;

  function progressive() {
    var ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", function () {
      var sb = ms.addSourceBuffer(video.dataset.mime);
      var queue = [];
      var finished = false;
      var duration = parseFloat(video.dataset.duration);
      function pump() {
        if (sb.updating) { return; }
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
        var reader = resp.body.getReader();
        function next() {
          return reader.read().then(function (part) {
            if (part.done) { finished = true; pump(); return; }
            queue.push(part.value);
            pump();
            return next();
          });
        }
        return next();
      });
    });
  }

  if (video.dataset.complete === "1") {
    video.src = src;
  } else if (window.MediaSource && MediaSource.isTypeSupported(video.dataset.mime)) {
    progressive();
  } else {
    video.src = src;  // plays once the stream is complete
  }
  video.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  video.addEventListener("seeked", function () {
    var body = new URLSearchParams({event: "seek", position: String(video.currentTime)});
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": token}});
  });
})();

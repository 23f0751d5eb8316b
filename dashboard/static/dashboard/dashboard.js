// The dashboard's progressive enhancement: copy buttons, confirmations, and the session page
// following its QR code and status live. Every page works without it.
(function () {
  "use strict";

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      var text = source.textContent.trim();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(source); });
      } else {
        select(source);
        try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
      }
    });
  });

  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  var panel = document.getElementById("qr-panel");
  if (!panel) return;
  var stateUrl = panel.getAttribute("data-state-url");
  var badge = document.getElementById("session-status");
  var image = document.getElementById("qr-image");
  var waiting = ["starting", "qr_pending"];

  function show(id, visible) {
    var node = document.getElementById(id);
    if (node) node.hidden = !visible;
  }

  function apply(state) {
    badge.textContent = state.status;
    badge.className = "badge " + state.status;
    badge.setAttribute("data-status", state.status);
    document.getElementById("session-phone").textContent =
      state.phoneNumber ? "as +" + state.phoneNumber : "";
    if (state.qrImage && image.getAttribute("data-qr") !== state.qr) {
      image.src = state.qrImage;  // the code rotated: show the new one
      image.setAttribute("data-qr", state.qr);
    }
    document.getElementById("qr-expiry").setAttribute("data-expires", state.qrExpiresAt || "");
    countdown();
    document.getElementById("pairing-code").textContent = state.pairingCode || "";
    show("pairing", !!state.pairingCode);
    show("qr-panel", !!state.qrImage);
    show("connected-panel", state.status === "connected");
    show("waiting-panel", state.status === "starting");
    show("ended-panel", !!state.endedText);
    show("restart-form", state.restartable);
    document.getElementById("ended-text").textContent = state.endedText;
    document.getElementById("restart-button").textContent = state.restartLabel;
    history(state.history || []);
  }

  // The session's history, newest first, as the server last reported it.
  function history(changes) {
    var list = document.getElementById("history");
    if (!list) return;
    list.textContent = "";
    changes.forEach(function (change) {
      var item = document.createElement("li");
      var time = document.createElement("time");
      time.textContent = change.at.replace("T", " ").replace("Z", "");
      var to = document.createElement("strong");
      to.textContent = change.to;
      item.append(time, " " + (change.from || "—") + " → ", to, " " + (change.reason || ""));
      list.appendChild(item);
    });
  }

  // "Expires in 42 s", every second, while a QR code waits to be scanned.
  function countdown() {
    var expiry = document.getElementById("qr-expiry");
    var at = expiry.getAttribute("data-expires");
    if (!at) { expiry.textContent = ""; return; }
    var left = Math.round((Date.parse(at) - Date.now()) / 1000);
    expiry.textContent = left > 0 ? "Expires in " + left + " s" : "Expired: a new code is on its way";
  }
  window.setInterval(countdown, 1000);
  countdown();

  function poll() {
    fetch(stateUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (state) apply(state);
        var status = state ? state.status : badge.getAttribute("data-status");
        window.setTimeout(poll, waiting.indexOf(status) >= 0 ? 1500 : 10000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 1500);
})();

// The status board, live: follows /v1/events (the session cookie signs the stream in) and,
// whenever the status changes, fetches the board again and swaps it in. Without this script
// the board is the same page, as fresh as its last load.
"use strict";

(function () {
  var board = document.getElementById("board");
  if (!board || typeof EventSource === "undefined" || typeof fetch === "undefined") {
    return;
  }
  var busy = false;
  var again = false;

  function say(text) {
    var live = document.getElementById("live");
    if (live) {
      live.textContent = text;
    }
  }

  function openDetails() {
    var ids = [];
    board.querySelectorAll("details[open]").forEach(function (details) {
      if (details.id) {
        ids.push(details.id);
      }
    });
    return ids;
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    var keepOpen = openDetails();
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error("signed out or unavailable (" + response.status + ")");
        }
        return response.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("board");
        if (!next) {
          throw new Error("no board in the answer");
        }
        keepOpen.forEach(function (id) {
          var details = next.querySelector("#" + CSS.escape(id));
          if (details) {
            details.open = true;
          }
        });
        board.replaceWith(next);
        board = next;
        say("Live: updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say("Not live: " + error.message + ". Reload the page.");
        source.close();
      })
      .finally(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var source = new EventSource(board.getAttribute("data-live"));
  source.addEventListener("open", function () {
    say("Live");
  });
  source.addEventListener("status", refresh);
  source.addEventListener("error", function () {
    say("Reconnecting…");
  });
})();

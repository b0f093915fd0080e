// The tenant page: an amount typed under "other" replaces the preset; a pending payment
// reloads the page every few seconds until the order is no longer waiting.
(function () {
  var form = document.getElementById("topup");
  var other = document.getElementById("other");
  if (form && other) {
    form.addEventListener("submit", function () {
      if (other.value) {
        var checked = form.querySelector("input[name=amount]:checked");
        if (checked) { checked.value = other.value.trim(); }
      }
    });
  }
  if (document.getElementById("pending")) {
    var rounds = 0;
    var timer = setInterval(function () {
      rounds += 1;
      if (rounds > 40) { clearInterval(timer); return; }
      fetch(window.location.href, { cache: "no-store" }).then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("balance");
          var now = document.getElementById("balance");
          if (fresh && now && fresh.textContent !== now.textContent) {
            document.body.innerHTML = doc.body.innerHTML;
            var note = document.getElementById("pending");
            if (note) { note.remove(); }
            clearInterval(timer);
          }
        });
    }, 1500);
  }
})();

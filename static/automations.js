// The automation builder's small enhancements; every form works without them.
// A wait step's form: the chosen mode's fieldset shows and the others are hidden (and disabled, so what is not shown
// is not sent). The focus stays on the select, and arrow keys on it switch the fieldset at once. Without JavaScript
// every fieldset shows, each legend naming its mode, and the server reads only the chosen mode's fields.
(function () {
  function sync(select) {
    var form = select.form;
    if (!form) return;
    var fieldsets = form.querySelectorAll("fieldset[data-mode]");
    for (var i = 0; i < fieldsets.length; i++) {
      var shown = fieldsets[i].getAttribute("data-mode") === select.value;
      fieldsets[i].hidden = !shown;
      fieldsets[i].disabled = !shown;
    }
  }
  function syncAll(root) {
    var selects = (root || document).querySelectorAll ? (root || document).querySelectorAll("select[data-wait-mode]") : [];
    for (var i = 0; i < selects.length; i++) sync(selects[i]);
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-wait-mode]")) sync(event.target);
  });
  document.addEventListener("htmx:load", function (event) { syncAll(event.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { syncAll(document); });
  } else {
    syncAll(document);
  }
})();

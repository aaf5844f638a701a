// The image picker (templates/media/_picker.html): choosing an image writes its path, and its name as alt
// text when none was written yet, into the inputs the picker names, then fires input and change on them so
// the form they belong to saves as if the person had typed. The picker loads this file each time it is
// shown; it sets itself up once.
(function () {
  if (window.loftMediaPicker) return;
  window.loftMediaPicker = true;

  function fill(id, value, onlyIfEmpty) {
    var input = id && document.getElementById(id);
    if (!input || (onlyIfEmpty && input.value)) return input;
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return input;
  }

  document.addEventListener("click", function (event) {
    var choice = event.target.closest("[data-media-choose]");
    if (!choice) return;
    var picker = choice.closest("[data-media-picker]");
    if (!picker) return;
    var src = fill(picker.getAttribute("data-target-src"), choice.getAttribute("data-src"), false);
    fill(picker.getAttribute("data-target-alt"), choice.getAttribute("data-name"), true);
    picker.querySelectorAll("[data-media-choose]").forEach(function (button) {
      button.setAttribute("aria-pressed", button === choice ? "true" : "false");
    });
    var status = picker.querySelector("[data-media-status]");
    if (status) status.textContent = "Chosen: " + choice.getAttribute("data-name");
    var dialog = picker.closest("dialog");
    if (dialog && dialog.open) dialog.close();
    if (src && dialog) src.focus();
  });
})();

// Small progressive enhancements; every page works without them.
// A data-autosubmit form (the team switcher) submits as soon as a choice is made. Arrow keys on a closed
// <select> change its value while the person is still looking through the options, so a change made that way
// waits for Enter (or the form's button) instead of taking them to another page at the first key.
var browsingKeys = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"];
var browsing = false;
document.addEventListener("keydown", function (event) {
  var select = event.target.tagName === "SELECT" && event.target.closest("form[data-autosubmit]");
  if (!select) return;
  if (event.key === "Enter") {
    event.preventDefault();
    browsing = false;
    select.requestSubmit();
    return;
  }
  browsing = !event.altKey && (browsingKeys.indexOf(event.key) >= 0 || event.key.length === 1 && event.key !== " ");
});
document.addEventListener("pointerdown", function () { browsing = false; });
document.addEventListener("change", function (event) {
  var form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.tagName === "SELECT" && !browsing) form.requestSubmit();
});

document.addEventListener("click", function (event) {
  // Plain (non-htmx) destructive buttons ask first; htmx ones use hx-confirm.
  var button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
});

document.addEventListener("htmx:afterSwap", function (event) {
  // After a form fragment comes back with an error, move focus to the first invalid field.
  // event.target is the new content: after an outerHTML swap, detail.target is the detached old element.
  var invalid = event.target.querySelector && event.target.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
});

document.addEventListener("input", function (event) {
  // A new custom field's key follows its label (Favourite colour → favourite_colour) until the key is
  // typed in by hand; the same rule as key_from_label in app/contacts/fields.py, which the server
  // applies when the key is left empty.
  var target = event.target;
  if (target.hasAttribute && target.hasAttribute("data-key-from")) {
    target.setAttribute("data-edited", target.value ? "true" : "");
    return;
  }
  var key = target.id && document.querySelector('[data-key-from="' + target.id + '"]');
  if (!key || key.getAttribute("data-edited")) return;
  var text = target.value.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  var slug = text.replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 40).replace(/_+$/, "");
  if (slug && !/^[a-z]/.test(slug)) slug = ("f_" + slug).slice(0, 40).replace(/_+$/, "");
  key.value = slug;
});

document.addEventListener("submit", function (event) {
  // A number field the browser cannot read ("4e", "1,5" in some locales) is sent empty, and an empty value
  // removes the stored one. The forms are novalidate (the server explains every other mistake in place),
  // so stop here and let the browser say what is wrong with that one field.
  var fields = event.target.querySelectorAll ? event.target.querySelectorAll("input[type=number]") : [];
  for (var i = 0; i < fields.length; i++) {
    if (fields[i].validity.badInput) {
      event.preventDefault();
      event.stopPropagation();  // capture phase: htmx never sees this submit
      fields[i].reportValidity();
      fields[i].focus();
      return;
    }
  }
}, true);

// Menus are <details class="menu">: they open and close without this. It closes an open menu on Escape (focus
// back on its button) and when the click lands outside it, as people expect of a menu.
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  var menu = document.activeElement && document.activeElement.closest && document.activeElement.closest("details.menu[open]");
  if (!menu) return;
  menu.open = false;
  menu.querySelector("summary").focus();
});

document.addEventListener("click", function (event) {
  var menus = document.querySelectorAll("details.menu[open]");
  for (var i = 0; i < menus.length; i++) {
    if (!menus[i].contains(event.target)) menus[i].open = false;
  }
});

// A table wider than the screen scrolls sideways inside its .table-wrap; keyboard users need to reach that
// region to scroll it, so a wrap that actually scrolls becomes a focusable, named region (and stops being one
// when the screen is wide enough).
function markScrollingTables(root) {
  var wraps = (root.querySelectorAll ? root : document).querySelectorAll(".table-wrap");
  for (var i = 0; i < wraps.length; i++) {
    var wrap = wraps[i];
    if (wrap.scrollWidth > wrap.clientWidth + 1) {
      if (wrap.hasAttribute("tabindex")) continue;
      var caption = wrap.querySelector("caption");
      var heading = wrap.closest("section, .card") && wrap.closest("section, .card").querySelector("h2, h3");
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", ((caption || heading || {}).textContent || "Table").trim() + " (scrolls sideways)");
    } else if (wrap.getAttribute("role") === "region") {
      wrap.removeAttribute("tabindex");
      wrap.removeAttribute("role");
      wrap.removeAttribute("aria-label");
    }
  }
}
document.addEventListener("DOMContentLoaded", function () { markScrollingTables(document); });
document.addEventListener("htmx:afterSettle", function () { markScrollingTables(document); });
window.addEventListener("resize", function () { markScrollingTables(document); });

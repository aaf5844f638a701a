// Small progressive enhancements; every page works without them.
document.addEventListener("change", function (event) {
  // The team switcher submits as soon as a team is picked (its button stays for keyboards and no-JS).
  var form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.tagName === "SELECT") form.requestSubmit();
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

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

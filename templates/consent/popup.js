/* Loft sign-up form popup. Include with one tag: <script src=".../f/<id>/popup.js" defer></script>.
   Opens the hosted form in a modal dialog when an element with data-loft-form="<id>" is clicked, and
   by itself after the form's delay (once per visit) when one is set. The native modal dialog keeps
   keyboard focus inside it, Esc closes it, and focus returns to what opened it. Sets no cookie. */
(function () {
  "use strict";
  var config = {{ config|tojson }};
  var dialog = null;
  var opener = null;
  var seenKey = "loft-form-seen-" + config.id;

  function build() {
    dialog = document.createElement("dialog");
    dialog.setAttribute("aria-label", config.title);
    dialog.className = "loft-form-dialog";
    dialog.style.cssText = "padding:0;border:0;border-radius:8px;width:min(30rem,calc(100vw - 1rem));" +
      "max-height:calc(100vh - 2rem);box-shadow:0 10px 40px rgba(0,0,0,.35);overflow:hidden;";
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", "Close");
    close.className = "loft-form-close";
    close.style.cssText = "position:absolute;top:.25rem;right:.25rem;font-size:1.5rem;line-height:1;" +
      "background:#fff;color:#18181b;border:1px solid #71717a;border-radius:4px;padding:.15rem .5rem;cursor:pointer;";
    var frame = document.createElement("iframe");
    frame.src = config.url;
    frame.title = config.title;
    frame.style.cssText = "display:block;border:0;width:100%;height:min(36rem,calc(100vh - 4rem));";
    dialog.appendChild(frame);
    dialog.appendChild(close);
    close.addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) { dialog.close(); }  // a click on the backdrop
    });
    dialog.addEventListener("close", function () {
      if (opener && typeof opener.focus === "function") { opener.focus(); }
    });
    document.body.appendChild(dialog);
  }

  function open(from) {
    if (!dialog) { build(); }
    if (dialog.open) { return; }
    opener = from || document.activeElement;
    dialog.showModal();
    dialog.querySelector(".loft-form-close").focus();
    try { window.sessionStorage.setItem(seenKey, "1"); } catch (e) { /* storage may be off */ }
  }

  document.addEventListener("click", function (event) {
    var target = event.target && event.target.closest ? event.target.closest("[data-loft-form]") : null;
    if (target && target.getAttribute("data-loft-form") === config.id) {
      event.preventDefault();
      open(target);
    }
  });

  if (config.delay > 0) {
    var seen = false;
    try { seen = window.sessionStorage.getItem(seenKey) === "1"; } catch (e) { seen = false; }
    if (!seen) { window.setTimeout(function () { open(null); }, config.delay * 1000); }
  }
}());

// The rewrite form of the campaign builder's AI panel learns which text of the Body field is selected, so the
// server rewrites only that slice. Offsets are counted in characters (code points), as the server counts them.
(function () {
  "use strict";
  if (window.loftAiWriting) {
    return;  // the form's fragment is swapped in again after each rewrite
  }
  window.loftAiWriting = true;

  function characters(text) {
    return Array.from(text).length;
  }

  function update(body) {
    var form = document.querySelector("form[data-ai-rewrite]");
    if (!form || !body) {
      return;
    }
    var start = body.selectionStart;
    var end = body.selectionEnd;
    var chosen = typeof start === "number" && end > start;
    var startField = form.querySelector("[data-ai-selection-start]");
    var endField = form.querySelector("[data-ai-selection-end]");
    var note = form.querySelector("[data-ai-selection-note]");
    var from = chosen ? characters(body.value.slice(0, start)) : 0;
    var to = chosen ? from + characters(body.value.slice(start, end)) : 0;
    startField.value = chosen ? String(from) : "";
    endField.value = chosen ? String(to) : "";
    if (note) {
      note.textContent = chosen ? (to - from) + " characters selected." : "Select some text in the Body field first.";
    }
    var selectionChoice = form.querySelector('input[name="scope"][value="selection"]');
    var bodyChoice = form.querySelector('input[name="scope"][value="body"]');
    if (chosen && selectionChoice) {
      selectionChoice.checked = true;
    } else if (!chosen && bodyChoice && selectionChoice && selectionChoice.checked) {
      bodyChoice.checked = true;
    }
  }

  ["select", "keyup", "mouseup"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (event.target && event.target.id === "f-body") {
        update(event.target);
      }
    });
  });

  // After Accept or Undo the card is swapped and the pressed button is gone: the focus goes to the button
  // that reverses it (Undo after Accept, Accept after Undo), so a keyboard user stays in the card.
  document.addEventListener("htmx:afterSwap", function (event) {
    var next = event.target.querySelector && event.target.querySelector("[data-ai-focus]");
    if (next) {
      next.focus();
    }
  });
})();

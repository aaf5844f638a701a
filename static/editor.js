// The block editor (templates/editor/): every change is an htmx POST that swaps #block-editor whole.
// After each swap this keeps the person's place (focus on the block just changed, the edit forms that
// were open stay open) and says what happened in the live region. It also adds what HTML alone cannot:
// Alt+ArrowUp/Down to move the focused block, drag and drop (SortableJS), a rich-text area with a small
// toolbar over each text block's textarea, and the personalisation picker that inserts at the cursor.
(function () {
  "use strict";

  var openBlocks = [];
  var unsaved = {};  // block id -> {field name: value} typed but not saved, kept across a whole-editor swap

  function editor() {
    return document.getElementById("block-editor");
  }

  // --- After each swap -----------------------------------------------------------------------

  function announce(root) {
    var status = document.getElementById("block-editor-status");
    var text = root.getAttribute("data-announce");
    if (status && text) {
      status.textContent = "";
      // A fresh text node a moment later is announced even when the words repeat.
      window.setTimeout(function () { status.textContent = text; }, 50);
    }
  }

  function restoreFocus(root) {
    var invalid = root.querySelector("[aria-invalid=true]");
    if (invalid) {
      var rich = invalid.classList.contains("rich-source") && invalid.previousElementSibling;
      (rich && rich.classList.contains("rich-text") ? rich : invalid).focus();
      return;
    }
    var id = root.getAttribute("data-focus");
    var target = id && document.getElementById(id);
    if (!target) return;
    if (root.hasAttribute("data-focus-field")) {
      // A new block: straight into its first field, ready to type.
      var first = target.querySelector("details.block-edit .rich-text, details.block-edit input:not([type=hidden]), " +
                                       "details.block-edit select, details.block-edit textarea:not([hidden])");
      if (first) target = first;
    }
    target.focus();
    if (target.scrollIntoView) target.scrollIntoView({block: "nearest"});
  }

  function reopen(root) {
    openBlocks.forEach(function (blockId) {
      var block = document.getElementById("block-" + blockId);
      var details = block && block.querySelector(":scope > details.block-edit");
      if (details) details.open = true;
    });
  }

  function restoreUnsaved() {
    Object.keys(unsaved).forEach(function (blockId) {
      var block = document.getElementById("block-" + blockId);
      var form = block && block.querySelector(":scope > details.block-edit form.block-form");
      if (!form) return;
      Object.keys(unsaved[blockId]).forEach(function (name) {
        var field = form.elements[name];
        if (field && "value" in field) field.value = unsaved[blockId][name];
      });
      form.setAttribute("data-unsaved", "");
      form.parentElement.open = true;
    });
    unsaved = {};
  }

  function setUp(root, swapped) {
    if (swapped) restoreUnsaved();  // before the rich-text areas are made from their textareas
    root.querySelectorAll("textarea.rich-source").forEach(enhanceRichText);
    makeSortable(root);
    if (swapped) {
      reopen(root);
      restoreFocus(root);
      announce(root);
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var root = editor();
    var target = event.detail.target;
    if (!root || !root.contains(target)) return;
    // SortableJS leaves inline styles on the blocks it moved; htmx would copy them onto the new blocks
    // (it settles class and style attributes by id), which the page's CSP (style-src 'self') refuses.
    target.removeAttribute("style");
    target.querySelectorAll("li.block[style]").forEach(function (block) { block.removeAttribute("style"); });
    if (target !== root) return;
    // Another block's change swaps every block: what was typed in the others and not saved goes along.
    unsaved = {};
    root.querySelectorAll("form.block-form[data-unsaved]").forEach(function (form) {
      var values = {};
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name && field.name !== "csrf_token" && !/^(submit|button)$/.test(field.type)) values[field.name] = field.value;
      });
      unsaved[form.closest("li.block").getAttribute("data-block-id")] = values;
    });
    openBlocks = [];
    root.querySelectorAll("li.block > details.block-edit[open]").forEach(function (details) {
      openBlocks.push(details.parentElement.getAttribute("data-block-id"));
    });
  });

  document.addEventListener("htmx:afterSettle", function () {
    var root = editor();
    if (root && !root.hasAttribute("data-ready")) {
      root.setAttribute("data-ready", "");
      setUp(root, true);
      return;
    }
    // An edit swaps its own block only: focus and announce from the block.
    var block = root && root.querySelector("li.block[data-swapped]");
    if (block) {
      block.removeAttribute("data-swapped");
      block.querySelectorAll("textarea.rich-source").forEach(enhanceRichText);
      block.setAttribute("data-focus", block.id);
      restoreFocus(block);
      announce(block);
    }
  });

  function start() {
    var root = editor();
    if (root) {
      root.setAttribute("data-ready", "");
      setUp(root, false);
    }
  }

  // Once this whole file has run: start() reaches the rich-text tables defined further down (a deferred
  // script runs after parsing, so readyState is already past "loading" here).
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else window.setTimeout(start, 0);

  function markUnsaved(event) {
    var form = event.target.closest && event.target.closest("#block-editor form.block-form");
    if (form) form.setAttribute("data-unsaved", "");
  }
  document.addEventListener("input", markUnsaved);
  document.addEventListener("change", markUnsaved);

  // --- Moving blocks -------------------------------------------------------------------------

  function isTyping(element) {
    return element.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName);
  }

  document.addEventListener("keydown", function (event) {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    var block = event.target.closest && event.target.closest("#block-editor li.block");
    if (!block || isTyping(event.target)) return;
    event.preventDefault();
    var direction = event.key === "ArrowUp" ? "up" : "down";
    var button = block.querySelector(':scope > .block-bar button[name=direction][value=' + direction + ']');
    var status = document.getElementById("block-editor-status");
    if (button && !button.disabled) button.click();
    else if (status) status.textContent = "This block is already the " + (direction === "up" ? "first" : "last") + " one.";
  });

  // The top-level list and each column's list share one group, so a block is dragged into a column and
  // back out; a columns block is only ever dropped at the top level (the server would refuse it too).
  function makeSortable(root) {
    var top = root.querySelector("#block-list");
    var url = root.getAttribute("data-blocks-url");
    if (!top || !url || !window.Sortable || !window.htmx) return;
    root.querySelectorAll("ol.block-list[data-into]").forEach(function (list) {
      window.Sortable.create(list, {
        group: {
          name: "blocks",
          put: function (to, from, dragged) { return to.el === top || !dragged.classList.contains("block-columns"); }
        },
        handle: ".block-handle",
        draggable: "li.block",
        animation: 120,
        emptyInsertThreshold: 24,
        onEnd: function (event) {
          if (event.from === event.to && event.oldIndex === event.newIndex) return;
          var token = root.querySelector("input[name=csrf_token]");
          var values = {to_index: String(event.newIndex), csrf_token: token ? token.value : ""};
          if (event.from !== event.to || event.to !== top) values.into = event.to.getAttribute("data-into");
          window.htmx.ajax("POST", url + "/" + encodeURIComponent(event.item.getAttribute("data-block-id")) + "/move", {
            source: event.item, target: "#block-editor", swap: "outerHTML", values: values
          });
        }
      });
    });
  }

  // --- Rich text -----------------------------------------------------------------------------
  // The textarea stays the form's field (and the whole editor without JavaScript); the editable area
  // writes its HTML into it. The server sanitizes what is posted; the copy shown here is cleaned too,
  // so markup typed into a refused form is never run in this page.

  var ALLOWED = {P: [], BR: [], STRONG: [], B: [], EM: [], I: [], U: [], A: ["href"], UL: [], OL: [], LI: []};
  var SAFE_LINK = /^(https?:|mailto:|\{\{)/i;

  function cleanInto(target, source) {
    Array.prototype.forEach.call(source.childNodes, function (node) {
      if (node.nodeType === 3) {
        target.appendChild(document.createTextNode(node.nodeValue));
      } else if (node.nodeType === 1) {
        if (!ALLOWED.hasOwnProperty(node.tagName)) {
          if (!/^(SCRIPT|STYLE|TEMPLATE|IFRAME|OBJECT)$/.test(node.tagName)) cleanInto(target, node);
          return;
        }
        var copy = document.createElement(node.tagName);
        var href = node.getAttribute("href");
        if (node.tagName === "A" && href && SAFE_LINK.test(href.trim())) copy.setAttribute("href", href.trim());
        cleanInto(copy, node);
        target.appendChild(copy);
      }
    });
  }

  function setHtml(area, html) {
    var parsed = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
    area.textContent = "";
    cleanInto(area, parsed.body);
  }

  var TOOLS = [
    {label: "Bold", command: "bold", text: "B", toggles: true},
    {label: "Italic", command: "italic", text: "I", toggles: true},
    {label: "Link", command: "createLink", text: "Link"},
    {label: "Bulleted list", command: "insertUnorderedList", text: "• List"},
    {label: "Numbered list", command: "insertOrderedList", text: "1. List"}
  ];
  var NOT_LINKED = "Not linked: a link starts with https://, http:// or mailto:, or is a merge tag.";

  function say(text) {
    var status = document.getElementById("block-editor-status");
    if (status) status.textContent = text;
  }

  // Bold and Italic say whether the text at the cursor is bold or italic (aria-pressed), as they toggle it.
  function showState(area, toolbar) {
    var selection = window.getSelection();
    var inside = selection.rangeCount && area.contains(selection.anchorNode);
    toolbar.querySelectorAll("button[aria-pressed]").forEach(function (button) {
      var on = false;
      try { on = Boolean(inside && document.queryCommandState(button.getAttribute("data-command"))); } catch (e) { on = false; }
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  document.addEventListener("selectionchange", function () {
    var selection = window.getSelection();
    var node = selection.rangeCount && selection.anchorNode;
    var element = node && (node.nodeType === 1 ? node : node.parentElement);
    var area = element && element.closest && element.closest(".rich-text");
    if (area && area.richToolbar) showState(area, area.richToolbar);
  });

  // The Link button opens a small labelled form under the toolbar (a group: a <form> cannot sit inside the
  // block's form); Enter adds the link, Escape or Cancel closes it, and the focus goes back to the text.
  function linkForm(area, id, restoreSelection, sync) {
    var group = document.createElement("div");
    group.className = "rich-link-form";
    group.id = id + "-form";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Add a link");
    group.hidden = true;
    var field = document.createElement("div");
    field.className = "field";
    var label = document.createElement("label");
    label.id = id + "-label";
    label.htmlFor = id;
    label.textContent = "Link address";
    var input = document.createElement("input");
    input.id = id;
    input.type = "text";
    input.setAttribute("inputmode", "url");
    input.setAttribute("autocomplete", "off");
    input.setAttribute("aria-describedby", id + "-help");
    var help = document.createElement("p");
    help.className = "help";
    help.id = id + "-help";
    help.textContent = "https://…, http://…, mailto:… or a merge tag such as {{ unsubscribe_url }}.";
    var error = document.createElement("p");
    error.className = "error";
    error.id = id + "-error";
    error.hidden = true;
    field.append(label, input, help);
    var add = document.createElement("button");
    add.type = "button";
    add.className = "small primary";
    add.textContent = "Add link";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "small";
    cancel.textContent = "Cancel";
    group.append(field, add, cancel, error);

    function close() {
      group.hidden = true;
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      input.setAttribute("aria-describedby", id + "-help");
      area.focus();
      restoreSelection();
    }
    function apply() {
      var address = input.value.trim();
      if (!address || address === "https://") {
        close();
        return;
      }
      if (!SAFE_LINK.test(address)) {  // the server would drop it anyway: say so now, at the field
        error.textContent = NOT_LINKED;
        error.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", id + "-error " + id + "-help");
        say(NOT_LINKED);
        input.focus();
        return;
      }
      close();
      var selection = window.getSelection();
      if (selection.isCollapsed && selection.rangeCount && area.contains(selection.anchorNode)) {
        // No text chosen: the address itself becomes the link's text. Put in as a node, since insertHTML
        // makes Chromium copy computed styles into style attributes, which the page's CSP refuses.
        var link = document.createElement("a");
        link.href = address;
        link.textContent = address;
        var range = selection.getRangeAt(0);
        range.insertNode(link);
        range.setStartAfter(link);
        range.collapse(true);
        selection.removeAllRanges();
        selection.addRange(range);
      } else if (!selection.isCollapsed) {
        document.execCommand("createLink", false, address);
      }
      sync();
      say("Linked to " + address + ".");
    }
    add.addEventListener("click", apply);
    cancel.addEventListener("click", close);
    group.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target === input) {
        event.preventDefault();  // not the block form's submit
        apply();
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    group.open = function () {
      input.value = "https://";
      group.hidden = false;
      input.focus();
      input.select();
    };
    return group;
  }

  function enhanceRichText(textarea) {
    if (textarea.getAttribute("data-enhanced")) return;
    textarea.setAttribute("data-enhanced", "true");
    var label = document.querySelector('label[for="' + textarea.id + '"]');
    var toolbar = document.createElement("div");
    toolbar.className = "rich-toolbar";
    toolbar.setAttribute("role", "toolbar");
    toolbar.setAttribute("aria-label", "Text formatting");
    var area = document.createElement("div");
    area.className = "rich-text";
    area.id = textarea.id + "-rich";
    area.contentEditable = "true";
    area.setAttribute("role", "textbox");
    area.setAttribute("aria-multiline", "true");
    area.setAttribute("data-merge-target", "");
    area.richToolbar = toolbar;
    if (label) {
      if (!label.id) label.id = textarea.id + "-label";
      area.setAttribute("aria-labelledby", label.id);
      label.setAttribute("for", area.id);  // a click on the label goes to the area people type in
    }
    ["aria-describedby", "aria-invalid"].forEach(function (name) {
      if (textarea.hasAttribute(name)) area.setAttribute(name, textarea.getAttribute(name));
    });
    setHtml(area, textarea.value);
    var sync = function () { textarea.value = area.innerHTML; };
    area.addEventListener("input", sync);
    var savedRange = null;
    area.addEventListener("blur", function () {
      var selection = window.getSelection();
      if (selection.rangeCount && area.contains(selection.anchorNode)) savedRange = selection.getRangeAt(0).cloneRange();
    });
    // A toolbar button reached with Tab took the focus from the text, and focusing the text again puts the
    // caret at its start: the selection it had when it lost the focus is put back.
    function focusWithSelection() {
      var hadFocus = document.activeElement === area;
      area.focus();
      var selection = window.getSelection();
      if (savedRange && (!hadFocus || !selection.rangeCount || !area.contains(selection.anchorNode))) {
        selection.removeAllRanges();
        selection.addRange(savedRange);
      }
    }
    // Back from the link form the focus has left the text, so the selection it had is put back as it was.
    var linkRange = null;
    var linkGroup = linkForm(area, textarea.id + "-link", function () {
      if (!linkRange) return;
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(linkRange);
    }, sync);
    TOOLS.forEach(function (tool) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = tool.text;
      button.setAttribute("aria-label", tool.label);
      button.setAttribute("data-command", tool.command);
      if (tool.toggles) button.setAttribute("aria-pressed", "false");
      if (tool.command === "createLink") button.setAttribute("aria-controls", linkGroup.id);
      button.addEventListener("mousedown", function (event) { event.preventDefault(); });  // keep the selection
      button.addEventListener("click", function () {
        focusWithSelection();
        if (tool.command === "createLink") {
          var selection = window.getSelection();
          linkRange = selection.rangeCount && area.contains(selection.anchorNode) ? selection.getRangeAt(0).cloneRange() : null;
          linkGroup.open();
          return;
        }
        document.execCommand(tool.command, false, null);
        sync();
        showState(area, toolbar);
      });
      toolbar.appendChild(button);
    });
    textarea.hidden = true;
    textarea.parentNode.insertBefore(toolbar, textarea);
    textarea.parentNode.insertBefore(area, textarea);
    textarea.parentNode.insertBefore(linkGroup, textarea);  // after the text: a new block's focus goes to the text
    area.rememberRange = function () { return savedRange; };
  }

  // --- The media library's picker (app/media) ------------------------------------------------
  // media.js fills the image's address and alt text; then the focus goes back to the address, in the
  // block's form, and the picker closes, so the next Tab reaches the rest of the form and its Save button.

  document.addEventListener("click", function (event) {
    var choice = event.target.closest && event.target.closest("#block-editor [data-media-choose]");
    if (!choice) return;
    var picker = choice.closest("[data-media-picker]");
    var holder = picker && picker.parentElement;
    var src = picker && document.getElementById(picker.getAttribute("data-target-src"));
    window.setTimeout(function () {  // after media.js (a listener of the same click) has filled the fields
      if (src) src.focus();
      if (holder && holder.classList.contains("block-picker")) holder.textContent = "";
    }, 0);
  });

  // --- Personalisation picker ----------------------------------------------------------------
  // It inserts into the field of its form that was focused last (else the form's first one).

  document.addEventListener("focusout", function (event) {
    var target = event.target;
    if (!target.closest || !target.hasAttribute("data-merge-target")) return;
    var form = target.closest("form");
    if (!form) return;
    form.mergeTarget = target;
    if (!target.isContentEditable) target.mergeSelection = [target.selectionStart, target.selectionEnd];
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-merge-tag]");
    if (!button) return;
    var form = button.closest("form");
    var target = form && (form.mergeTarget || form.querySelector("[data-merge-target]:not([hidden])"));
    if (!target) return;
    var tag = button.getAttribute("data-merge-tag");
    target.focus();
    if (target.isContentEditable) {
      var range = target.rememberRange && target.rememberRange();
      var selection = window.getSelection();
      if (range) {
        selection.removeAllRanges();
        selection.addRange(range);
      }
      document.execCommand("insertText", false, tag);
    } else {
      var at = target.mergeSelection || [target.value.length, target.value.length];
      target.setRangeText(tag, at[0], at[1], "end");
      target.mergeSelection = [target.selectionStart, target.selectionEnd];
      target.dispatchEvent(new Event("input", {bubbles: true}));
    }
    var picker = button.closest("details");
    if (picker) picker.open = false;
    var status = document.getElementById("block-editor-status");
    if (status) status.textContent = "Inserted " + tag + ".";
  });
})();

// "Copy" buttons: copy the value of the box a button names (data-copy), and say so in #copy-status.
// Without JavaScript the boxes are still there to select and copy by hand.
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  var box = document.querySelector(button.getAttribute("data-copy"));
  if (!box) return;
  var done = function () {
    var status = document.getElementById("copy-status");
    if (status) status.textContent = "Copied to the clipboard.";
  };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(box.value).then(done, function () { box.select(); });
  } else {
    box.select();
    document.execCommand("copy");
    done();
  }
});

// The sign-up form builder's "Copy" buttons: copy the snippet of the box they name (data-copy), and say so.
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

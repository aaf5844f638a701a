/* The AI card of the campaign builder (templates/ai/_job.html): when a job's card is swapped in place
   of the control that had the focus (Cancel, Use as subject, Make an A/B test, or a poll that found the
   job finished), the focus would fall back to the top of the page; put it on the card's news instead,
   so a keyboard user carries on from there. Typing elsewhere on the page is left alone. */
(function () {
  document.addEventListener("htmx:afterSwap", function (event) {
    var swapped = event.target;
    if (!swapped || !swapped.querySelector) return;
    var card = swapped.matches(".ai-job") ? swapped : swapped.querySelector(".ai-job");
    if (!card) return;
    var focused = document.activeElement;
    if (focused && focused !== document.body && document.contains(focused)) return;
    var news = card.querySelector("[role=alert], [role=status], .ai-suggestions, button");
    if (!news) return;
    if (!news.matches("button")) news.setAttribute("tabindex", "-1");
    news.focus();
  });
})();

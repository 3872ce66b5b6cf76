// Filters the verdict table and the case sections by verdict and group.
(function () {
  var verdict = document.getElementById("filter-verdict");
  var group = document.getElementById("filter-group");
  function apply() {
    var items = document.querySelectorAll("[data-verdict]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var show = (verdict.value === "" || el.getAttribute("data-verdict") === verdict.value) &&
        (group.value === "" || el.getAttribute("data-group") === group.value);
      el.hidden = !show;
    }
  }
  verdict.addEventListener("change", apply);
  group.addEventListener("change", apply);
  apply();
})();

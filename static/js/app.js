// Small behaviours with no inline script, so the pages work under a strict Content-Security-Policy.
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) {
    event.target.form.submit();
  }
});
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-check-all]");
  if (toggle) {
    const scope = document.querySelector(toggle.dataset.checkAll);
    scope.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = toggle.checked; });
  }
});

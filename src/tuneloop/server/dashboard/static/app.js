// tuneloop dashboard: the little interaction the pages need; they work without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms that change state ask first (rollback).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
  // Filter selects apply as soon as they change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // Open the span named in the URL fragment (#span-<id>) of a waterfall.
  const wanted = window.location.hash.replace(/^#span-/, "");
  if (wanted) {
    const row = document.querySelector(`.wf-row[data-span="${CSS.escape(wanted)}"]`);
    if (row) {
      row.open = true;
      row.scrollIntoView({ block: "center" });
    }
  }
});

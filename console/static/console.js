// oncehook console: the little that needs a script. Everything works
// without it, but for the overview's auto-refresh.
"use strict";

// The overview refreshes its own element every data-refresh seconds,
// counted from the end of the last refresh, so slow ones never overlap.
function refreshOverview() {
  const el = document.getElementById("overview");
  if (!el) return;
  const seconds = Math.max(2, Number(el.dataset.refresh) || 5);
  const tick = async () => {
    try {
      const res = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.getElementById("overview");
        if (fresh) el.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
      }
    } catch (_) {
      // The next tick tries again.
    }
    setTimeout(tick, seconds * 1000);
  };
  setTimeout(tick, seconds * 1000);
}

// "Select all" ticks every event on a dead-letters page.
function selectAll() {
  for (const box of document.querySelectorAll("input.select-all")) {
    box.addEventListener("change", () => {
      for (const item of document.querySelectorAll('input[type=checkbox][name=id]')) item.checked = box.checked;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  refreshOverview();
  selectAll();
});

// Enhances the server-rendered status page; everything works without it. Every few seconds
// it fetches the page it shows and swaps in the parts marked data-live (no full reload), and
// the "failing only" link swaps them in place instead of navigating.
(() => {
  "use strict";

  const content = document.getElementById("content");
  const seconds = Number(content && content.dataset.refreshSeconds) || 0;
  const stale = document.querySelector(".banner.stale");

  async function load(url, push) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
    } catch (error) {
      response = null;
    }
    if (!response || !response.ok) {
      if (stale) stale.hidden = false;
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const live of document.querySelectorAll("[data-live]")) {
      const replacement = fresh.getElementById(live.id);
      if (replacement) live.replaceWith(document.adoptNode(replacement));
    }
    if (stale) stale.hidden = true;
    if (push) history.pushState(null, "", url);
    document.dispatchEvent(new CustomEvent("canary:refreshed"));
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-filter]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    load(link.href, true);
  });
  window.addEventListener("popstate", () => load(location.href, false));
  if (seconds > 0) {
    setInterval(() => {
      if (!document.hidden) load(location.href, false);
    }, seconds * 1000);
  }
})();

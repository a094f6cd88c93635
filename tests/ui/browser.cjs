// Drives Canary's status page in Debian's Chromium through playwright-core and prints what it
// saw as one JSON document, which tests/ui/browser.rs judges (the expectations live there).
// Environment: CANARY_URL (the page), CHROMIUM (the browser), SCREENSHOTS (a folder).
"use strict";

const { chromium } = require("playwright-core");

const base = process.env.CANARY_URL;
const shots = process.env.SCREENSHOTS;
const WAIT = 20000;

/// Everything the page logged or asked for, across every context.
const seen = { console: [], requests: [] };

function watch(page) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") seen.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => seen.console.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => seen.console.push(`requestfailed: ${r.url()}`));
  page.on("request", (r) => seen.requests.push(r.url()));
  return page;
}

async function cards(page) {
  return page.$$eval(".card", (all) =>
    all.map((card) => {
      const ok = card.querySelector(".tick.ok");
      const fail = card.querySelector(".tick.fail");
      return {
        name: card.querySelector("h3").textContent,
        state: card.dataset.state,
        ticks: card.querySelectorAll(".tick").length,
        ok: card.querySelectorAll(".tick.ok").length,
        fail: card.querySelectorAll(".tick.fail").length,
        okColour: ok ? getComputedStyle(ok).backgroundColor : null,
        failColour: fail ? getComputedStyle(fail).backgroundColor : null,
        title: (ok || fail || card).getAttribute("title"),
      };
    }),
  );
}

async function overview(page, name) {
  await page.goto(`${base}/`);
  await page.waitForSelector(".card", { timeout: WAIT });
  const facts = {
    cards: await cards(page),
    groups: await page.$$eval("section.group h2", (h) => h.map((e) => e.firstChild.textContent)),
    overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
  };
  await page.screenshot({ path: `${shots}/overview-${name}.png`, fullPage: true });
  return facts;
}

/// Waits for the page's own refresh, and tells whether the document survived it (no reload).
async function refresh(page) {
  await page.evaluate(() => (window.canaryMarker = "kept"));
  const before = await cards(page);
  await page.evaluate(
    (wait) =>
      new Promise((resolve, reject) => {
        document.addEventListener("canary:refreshed", resolve, { once: true });
        setTimeout(() => reject(new Error("no refresh")), wait);
      }),
    WAIT,
  );
  const after = await cards(page);
  const results = (list) => list.map((c) => c.ok + c.fail).reduce((a, b) => a + b, 0);
  return {
    kept: await page.evaluate(() => window.canaryMarker === "kept"),
    before: results(before),
    after: results(after),
  };
}

async function failingOnly(page, name) {
  await page.evaluate(() => (window.canaryMarker = "kept"));
  await page.click("a[data-filter]");
  await page.waitForFunction(() => location.search.includes("failing=1") && document.querySelector("a.filter.on"), null, { timeout: WAIT });
  const facts = {
    cards: await cards(page),
    kept: await page.evaluate(() => window.canaryMarker === "kept"),
  };
  await page.screenshot({ path: `${shots}/failing-only-${name}.png`, fullPage: true });
  await page.click("a[data-filter]");
  await page.waitForFunction(() => !location.search.includes("failing=1"), null, { timeout: WAIT });
  facts.cardsAfterClearing = (await cards(page)).length;
  return facts;
}

async function detail(page, name) {
  await page.click('.card h3 a[href="/checks/shop/cart"]');
  await page.waitForSelector("svg.chart", { timeout: WAIT });
  await page.waitForFunction(() => [...document.images].every((i) => i.complete), null, { timeout: WAIT });
  const facts = await page.evaluate(() => ({
    title: document.title,
    points: document.querySelectorAll("svg.chart circle").length,
    failedPoints: document.querySelectorAll("svg.chart circle.fail").length,
    transitions: document.querySelectorAll("table.transitions tbody tr").length,
    // Each transition's message: shown (not display:none), inside the viewport, not clipped.
    transitionMessages: [...document.querySelectorAll("table.transitions tbody td:nth-child(4)")].map((td) => {
      const box = td.getBoundingClientRect();
      return {
        text: td.textContent,
        shown: getComputedStyle(td).display !== "none" && box.width > 0 && box.height > 0,
        inside: box.left >= 0 && box.right <= window.innerWidth + 0.5,
        clipped: td.scrollWidth > td.clientWidth + 1,
      };
    }),
    spec: document.querySelector("pre.spec") ? document.querySelector("pre.spec").textContent : "",
    badges: [...document.images].map((i) => ({ src: i.getAttribute("src"), width: i.naturalWidth })),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  }));
  await page.screenshot({ path: `${shots}/detail-${name}.png`, fullPage: true });
  return facts;
}

async function viewport(browser, name, options) {
  const context = await browser.newContext(options);
  const page = watch(await context.newPage());
  const facts = { overview: await overview(page, name) };
  facts.refresh = await refresh(page);
  facts.failingOnly = await failingOnly(page, name);
  facts.detail = await detail(page, name);
  await context.close();
  return facts;
}

/// Without JavaScript: the server-rendered overview and its failing-only link still work.
async function noScript(browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = watch(await context.newPage());
  await page.goto(`${base}/`);
  const all = await cards(page);
  await page.click("a[data-filter]");
  await page.waitForURL(/failing=1/, { timeout: WAIT });
  const failing = await cards(page);
  await context.close();
  return { cards: all.length, failingStates: failing.map((c) => c.state) };
}

async function background(browser, colorScheme) {
  const context = await browser.newContext({ colorScheme, viewport: { width: 1280, height: 900 } });
  const page = watch(await context.newPage());
  await page.goto(`${base}/`);
  const colour = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.screenshot({ path: `${shots}/overview-${colorScheme}.png` });
  await context.close();
  return colour;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  const report = {};
  try {
    report.desktop = await viewport(browser, "desktop", { viewport: { width: 1280, height: 900 } });
    report.phone = await viewport(browser, "phone", {
      viewport: { width: 375, height: 812 },
      isMobile: true,
      hasTouch: true,
    });
    report.noScript = await noScript(browser);
    report.light = await background(browser, "light");
    report.dark = await background(browser, "dark");
  } finally {
    await browser.close();
  }
  report.console = seen.console;
  report.requests = seen.requests;
  process.stdout.write(JSON.stringify(report));
})().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});

// First contentful paint of a page in headless Chromium, as the median of several loads.
// Run by `cargo bench -p mist-api --bench pages` against its store of 200 games, and usable
// on its own against any running mistd:
//   MIST_URL=http://127.0.0.1:8080/ MIST_COOKIE='mist_session=…' node fcp.mjs
// MIST_FCP_LOADS (default 15) sets the loads; MIST_CHROMIUM the browser (/usr/bin/chromium).
// Prints one line: `fcp <url>: median <ms> ms, p90 <ms> ms over <n> loads`.
import { chromium } from "playwright-core";

export async function firstContentfulPaints(browser, url, cookie, loads) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  if (cookie) {
    const [name, ...value] = cookie.split("=");
    await context.addCookies([{ name, value: value.join("="), url }]);
  }
  const times = [];
  // The first load warms the browser's caches (the hashed assets are cached for ever, as
  // they are for a friend who comes back); it is not counted.
  for (let load = 0; load <= loads; load++) {
    const page = await context.newPage();
    const response = await page.goto(url, { waitUntil: "load" });
    if (!response || response.status() !== 200) {
      throw new Error(`${url} answered ${response && response.status()}`);
    }
    const fcp = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const done = () => {
            const entry = performance.getEntriesByName("first-contentful-paint")[0];
            if (entry) resolve(entry.startTime);
            return Boolean(entry);
          };
          if (!done()) {
            new PerformanceObserver(() => done()).observe({ type: "paint", buffered: true });
          }
        }),
    );
    if (load > 0) times.push(fcp);
    await page.close();
  }
  await context.close();
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)], n: times.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env.MIST_URL;
  if (!url) throw new Error("MIST_URL is not set");
  const loads = Number(process.env.MIST_FCP_LOADS || 15);
  const browser = await chromium.launch({
    executablePath: process.env.MIST_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const { median, p90, n } = await firstContentfulPaints(browser, url, process.env.MIST_COOKIE, loads);
    console.log(`fcp ${url}: median ${median.toFixed(0)} ms, p90 ${p90.toFixed(0)} ms over ${n} loads`);
  } finally {
    await browser.close();
  }
}

// Drives the pages of a running `mistd` (role all, over a `mistd demo` folder) in headless
// Chromium and checks each with axe-core. Run by mistd/tests/browser.rs, which starts the
// server and passes, in the environment:
//   MIST_URL, MIST_FRIEND_PASSWORD, MIST_ADMIN_PASSWORD, MIST_SPECS (the spec repository's
//   work tree), MIST_NAS, MIST_SCREENSHOTS (where to write the PNGs), MIST_CHROMIUM.
// Exits non-zero with a message naming what failed.
import { chromium } from "playwright-core";
import { appendFileSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("MIST_URL");
const specs = env("MIST_SPECS");
const nas = env("MIST_NAS");
const shots = env("MIST_SCREENSHOTS");
const LIVE_TIMEOUT = 120_000;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

function step(text) {
  console.log(`- ${text}`);
}

// Every serious or critical axe violation fails the run.
async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const violation of result.violations) {
    console.log(`  axe ${name}: ${violation.impact} ${violation.id}: ${violation.help} (${violation.nodes.length} nodes)`);
  }
  check(bad.length === 0, `${name}: ${bad.length} serious or critical axe violations`);
}

// A page's CSP refusals show up as console errors: none may appear. (Expected 404s, such as
// the friend's visit to /admin, are console errors too, and are not counted.)
function watchConsole(page, errors) {
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      errors.push(message.text());
    }
  });
  page.on("pageerror", (error) => errors.push(String(error)));
}

async function signIn(page, user, password) {
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === "/login", `anonymous / goes to /login, not ${page.url()}`);
  await page.fill("#user", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(new URL(page.url()).pathname === "/", `${user} lands on the store, not ${page.url()}`);
}

function git(...args) {
  return execFileSync("git", ["-C", specs, ...args], { encoding: "utf8" });
}

function commit(message) {
  git("add", "-A");
  git("-c", "user.name=Browser Test", "-c", "user.email=browser@mist.invalid", "commit", "-q", "-m", message);
}

function firstFile(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isFile()) return path;
    if (stat.isDirectory()) {
      const inner = firstFile(path);
      if (inner) return inner;
    }
  }
  return null;
}

async function friend(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  watchConsole(page, errors);
  await page.goto(`${base}/login`);
  await axe(page, "sign-in");
  await signIn(page, "friend", env("MIST_FRIEND_PASSWORD"));
  step("friend signed in");
  const titles = await page.locator(".card h2").allTextContents();
  check(titles.length >= 3, `the friend sees the demo's games: ${titles}`);
  await axe(page, "store");
  await page.screenshot({ path: join(shots, "store.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.locator(".card a").first().click()]);
  check((await page.locator("pre code").textContent()).startsWith("mist install "), "the install command");
  check((await page.locator("a.button").getAttribute("href")).startsWith("mist://games/"), "Open in Mist");
  check((await page.locator(".versions li").count()) >= 3, "the version history");
  await axe(page, "game");
  await page.screenshot({ path: join(shots, "game.png"), fullPage: true });
  const admin = await page.goto(`${base}/admin`);
  check(admin.status() === 404, `a friend never sees /admin (got ${admin.status()})`);
  check(!(await page.content()).includes("Spec repository"), "no board content for a friend");
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.addCookies(await context.cookies());
  const small = await phone.newPage();
  await small.goto(`${base}/`);
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the store fits a phone's width (overflows by ${overflow}px)`);
  await small.screenshot({ path: join(shots, "store-phone.png") });
  check(errors.length === 0, `no console errors (CSP): ${errors}`);
  step("friend pages checked");
  await phone.close();
  await context.close();
}

// Waits, without reloading, until `predicate(board text)` holds; returns the phases seen.
async function waitOnBoard(page, what, predicate) {
  await page.waitForFunction(predicate, null, { timeout: LIVE_TIMEOUT, polling: 100 }).catch(() => {
    throw new Error(`the board never showed ${what} live`);
  });
  check(await page.evaluate(() => window.__sameDocument === true), `${what}: the page was not reloaded`);
}

async function admin(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  watchConsole(page, errors);
  await signIn(page, "admin", env("MIST_ADMIN_PASSWORD"));
  await page.goto(`${base}/admin`);
  await page.waitForFunction(() => document.getElementById("live")?.textContent.startsWith("Live"), null, { timeout: 30_000 });
  await page.evaluate(() => {
    window.__sameDocument = true;
    window.__phases = [];
    new MutationObserver(() => {
      const tag = document.querySelector("#v-starfall-9\\.9 .tag");
      if (tag && window.__phases[window.__phases.length - 1] !== tag.textContent) window.__phases.push(tag.textContent);
    }).observe(document.body, { childList: true, subtree: true });
  });
  await axe(page, "board");
  step("admin board live");

  // A broken commit: refused, its error shown with file and line, the last good one in force.
  const gameFile = join(specs, "games", "tidewater", "game.yaml");
  const good = readFileSync(gameFile, "utf8");
  writeFileSync(gameFile, `${good}  titel: Oops\n`);
  commit("A typo");
  await waitOnBoard(page, "the refused commit's error", () =>
    /games\/tidewater\/game\.yaml:\d+/.test(document.querySelector(".errors")?.textContent ?? ""));
  step("refused commit shown with file:line");
  await page.screenshot({ path: join(shots, "admin-refused.png"), fullPage: false });
  writeFileSync(gameFile, good);
  commit("Fix the typo");
  await waitOnBoard(page, "the fixed commit", () => !document.querySelector(".errors"));

  // A new version: Reconciling, then Ready, without a reload.
  const builds = join(nas, "incoming", "starfall");
  const last = readdirSync(builds).sort().pop();
  cpSync(join(builds, last), join(builds, "9.9"), { recursive: true });
  appendFileSync(firstFile(join(builds, "9.9")), "a new release\n");
  writeFileSync(join(specs, "games", "starfall", "versions", "9.9.yaml"),
    'apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: "9.9"\n  game: starfall\nspec:\n  source: incoming/starfall/9.9\n  notes: Made by the browser test.\n');
  commit("starfall 9.9");
  await waitOnBoard(page, "starfall 9.9 Ready", () =>
    document.querySelector("#v-starfall-9\\.9 .tag")?.textContent === "Ready");
  const phases = await page.evaluate(() => window.__phases);
  step(`starfall 9.9 went ${phases.join(" → ")}`);
  check(phases.includes("Reconciling") && phases[phases.length - 1] === "Ready", `Reconciling then Ready: ${phases}`);

  // Its jobs' logs came with the live board: the ingest says what it read and how it ended,
  // in a <details> that opens without a script.
  await waitOnBoard(page, "the log of starfall 9.9's ingest", () =>
    [...document.querySelectorAll("details.job-log")].some((log) =>
      log.textContent.includes("incoming/starfall/9.9") && /scanned \d+ files?/.test(log.textContent) &&
      log.textContent.includes("done in")));
  const ingestLog = page.locator("details.job-log", { hasText: "incoming/starfall/9.9" })
    .filter({ hasText: "stored the manifest" }).first();
  await ingestLog.locator("summary").click();
  check(await ingestLog.evaluate((log) => log.open), "the ingest's log opens");
  const logLines = await ingestLog.locator("li").allTextContents();
  check(/^\d\d:\d\d:\d\d info attempt 1 of this ingest job/.test(logLines[0]), `the log's first line: ${logLines[0]}`);
  check(/done in [\d.]+ s$/.test(logLines[logLines.length - 1]), `the log's last line: ${logLines[logLines.length - 1]}`);
  step(`starfall 9.9's ingest logged ${logLines.length} lines`);
  await axe(page, "board with a job's log open");
  await ingestLog.screenshot({ path: join(shots, "admin-job-log.png") });

  // A build tampered with after ingest: Stalled, with what to do.
  const tampered = firstFile(join(nas, "incoming", "lantern", readdirSync(join(nas, "incoming", "lantern")).sort()[0]));
  appendFileSync(tampered, "tampered\n");
  await waitOnBoard(page, "a Stalled version", () =>
    [...document.querySelectorAll(".version")].some((v) => v.querySelector(".tag")?.textContent === "Stalled" && v.querySelector(".advice")));
  step("tampered build shown Stalled with advice");
  await page.screenshot({ path: join(shots, "admin.png"), fullPage: true });

  // A friend without the private game's grant (a user committed with the friend's password
  // hash): the game is on no page of theirs and answers 404 on its page and in the API.
  const friendSpec = readFileSync(join(specs, "users", "friend.yaml"), "utf8");
  writeFileSync(join(specs, "users", "outsider.yaml"),
    friendSpec.replace(/^  name: friend$/m, "  name: outsider").replace(/^  displayName: .*$/m, "  displayName: Outsider"));
  commit("A friend without lantern's grant");
  await waitOnBoard(page, "the new user", () =>
    [...document.querySelectorAll("td")].some((cell) => cell.textContent === "outsider"));
  await outsider(browser);
  check(errors.length === 0, `no console errors (CSP): ${errors}`);
  await context.close();
}

async function outsider(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await signIn(page, "outsider", env("MIST_FRIEND_PASSWORD"));
  const titles = await page.locator(".card h2").allTextContents();
  check(titles.length >= 2 && !titles.includes("Lantern"), `the outsider sees the public games only: ${titles}`);
  check(!(await page.content()).toLowerCase().includes("lantern"), "no trace of the private game on the store");
  const hidden = await page.goto(`${base}/games/lantern`);
  const missing = await page.request.get(`${base}/games/no-such-game`);
  check(hidden.status() === 404 && missing.status() === 404, `its page is a 404 (got ${hidden.status()})`);
  check((await hidden.text()) === (await missing.text()), "its 404 is the same as for a game that does not exist");
  const api = await page.request.get(`${base}/v1/games/lantern`);
  check(api.status() === 404, `the API hides it too (got ${api.status()})`);
  const list = await (await page.request.get(`${base}/v1/games`)).text();
  check(list.includes("starfall") && !list.includes("lantern"), "the API's game list leaves it out");
  step("a friend without the grant never sees the private game");
  await context.close();
}

mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.MIST_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  await friend(browser);
  await admin(browser);
  console.log("ok");
} finally {
  await browser.close();
}

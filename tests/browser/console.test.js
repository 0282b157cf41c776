#!/usr/bin/env node
// Browser tests of the PyKV web console (/ui): a real `pykv serve` on a free
// port, driven through Debian's Chromium by playwright-core (which never
// downloads a browser).
//
//   node tests/browser/console.test.js [path/to/pykv]
//
// The binary comes from the argument, else $PYKV_BIN, else target/debug/pykv;
// the browser from $CHROMIUM (default /usr/bin/chromium). Screenshots go to
// docs/screenshots/. The last line is `N passed, M failed`; the exit status
// is 1 if anything failed.

'use strict';

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BINARY = path.resolve(ROOT, process.argv[2] || process.env.PYKV_BIN || 'target/debug/pykv');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.join(ROOT, 'docs', 'screenshots');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 812 };
// The console refreshes every 2 s: waits for refreshed figures allow a few.
const REFRESH_WAIT = 10000;

// ---- A tiny sequential test runner -------------------------------------------

const results = { passed: 0, failed: 0 };

async function test(name, body) {
  const started = Date.now();
  try {
    await body();
    results.passed += 1;
    console.log(`ok   - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.failed += 1;
    console.log(`FAIL - ${name}\n       ${String(error && error.stack ? error.stack : error).split('\n').slice(0, 6).join('\n       ')}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function assertEqual(actual, expected, message) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

// ---- The server ----------------------------------------------------------------

const cleanups = [];

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts `pykv serve --port 0` and resolves with its base URL once it listens. */
function startServer(dataDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, ['serve', '--port', '0', '--data-dir', dataDir], {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const timeout = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not print its address within 30 s; stderr:\n${stderr}`));
    }, 30000);
    child.on('error', (error) => {
      clearTimeout(timeout);
      reject(new Error(`cannot start ${BINARY}: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timeout);
      reject(new Error(`the server exited (${code}) before listening; stderr:\n${stderr}`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^PyKV listening on (http:\/\/\S+)$/.exec(line.trim());
      if (!match) return;
      clearTimeout(timeout);
      child.removeAllListeners('exit');
      cleanups.push(() => stopServer(child));
      resolve({ base: match[1], child });
    });
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Calls the API directly (not through the page), to prepare data. */
async function call(base, method, urlPath, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(base + urlPath, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual',
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: the console's files */ }
  return { status: response.status, headers: response.headers, text, json };
}

/**
 * A little traffic while the tests run, so the charts have something to
 * draw: a set, a hit and a miss every 150 ms in namespace `traffic`.
 */
function startTraffic(base) {
  let n = 0;
  let running = true;
  const loop = (async () => {
    // Every key at once first, so the namespace's size is steady.
    for (let i = 0; i < 40; i += 1) {
      await call(base, 'POST', '/set', { key: `t:${i}`, value: i, namespace: 'traffic' }).catch(() => {});
    }
    while (running) {
      n += 1;
      await call(base, 'POST', '/set', { key: `t:${n % 40}`, value: n, namespace: 'traffic' }).catch(() => {});
      await call(base, 'GET', `/get/t:${n % 40}?ns=traffic`).catch(() => {});
      if (n % 3 === 0) await call(base, 'GET', '/get/absent?ns=traffic').catch(() => {});
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

// ---- The browser ---------------------------------------------------------------

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  }
  // A fresh profile each run: launchPersistentContext passes it to Chromium
  // as --user-data-dir (Playwright refuses that flag in `args`).
  const profile = tempDir('pykv-ui-profile-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: DESKTOP,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-proxy-server',
    ],
  });
  cleanups.unshift(() => context.close());
  return context;
}

/**
 * Collects the page's console errors and uncaught exceptions. A failed
 * request is reported by Chromium as a console error too: the ones a test
 * causes on purpose (a missing key, a refused token) are expected through
 * `expectFailures`, and any other one is an error.
 */
function watchErrors(page) {
  const errors = [];
  const expected = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location()?.url || '';
    const text = `${message.text()} ${where}`.trim();
    const allowed = /Failed to load resource/.test(message.text()) && expected.some((re) => re.test(where));
    if (!allowed) errors.push(`console: ${text}`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  return {
    errors,
    expectFailures(patterns) { expected.push(...patterns); },
    take() { return errors.splice(0); },
  };
}

/** `pykv token create ARGS` in `dataDir`; returns the token it prints. */
function createToken(dataDir, args) {
  const out = execFileSync(BINARY, ['token', 'create', '--data-dir', dataDir, ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  });
  const token = out.trim().split('\n').pop().trim();
  assert(/^pykv_[0-9a-f]{64}$/.test(token), `pykv token create printed ${JSON.stringify(out)}`);
  return token;
}

async function screenshot(page, name, fullPage = false) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage });
}

// ---- Page helpers --------------------------------------------------------------

function nsRow(page, namespace) {
  return page.locator(`#ns-body tr[data-namespace="${namespace}"]`);
}

async function tableNames(page) {
  return page.locator('#ns-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.namespace));
}

async function listedKeys(page) {
  return page.locator('#browse-list button').allTextContents();
}

async function waitForText(locator, pattern, timeout = REFRESH_WAIT) {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = (await locator.textContent().catch(() => '')) || '';
    if (pattern.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`waited ${timeout} ms for ${pattern}; last text: ${JSON.stringify(last)}`);
}

/** How many points the chart's lines go through. */
async function chartPoints(page, id) {
  return page.locator(`#${id} path.line`).evaluateAll((paths) => paths.reduce((n, p) => n + Number(p.dataset.points || 0), 0));
}

/** Every form control has a label a screen reader announces. */
async function unlabelledControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map((el) => el.id || el.name));
}

/** The ids of the first `count` elements reached with Tab from the top. */
async function tabOrder(page, count) {
  // Focusing the first element (the skip link) also moves the point where
  // sequential navigation starts, which a blur does not.
  await page.focus('a.skip-link');
  const order = ['skip-link'];
  for (let i = 1; i < count; i += 1) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  return order;
}

// ---- The tests -----------------------------------------------------------------

async function main() {
  console.log(`binary: ${BINARY}\nbrowser: ${CHROMIUM}`);
  const { base } = await startServer(tempDir('pykv-ui-data-'));
  console.log(`server: ${base}`);
  const stopTraffic = startTraffic(base);
  const context = await launchBrowser();
  const page = context.pages()[0] || await context.newPage();
  const watch = watchErrors(page);
  let keysRoute = false;

  await test('GET / redirects to /ui; the console and its files are served without a token', async () => {
    const root = await call(base, 'GET', '/');
    assert([303, 307, 308].includes(root.status), `/ answers a redirect, got ${root.status}`);
    assertEqual(root.headers.get('location'), '/ui', 'the redirect target');
    const ui = await call(base, 'GET', '/ui');
    assertEqual(ui.status, 200, 'GET /ui');
    assert(/^text\/html/.test(ui.headers.get('content-type')), 'the console is HTML');
    assert(ui.text.includes('PyKV console'), 'the page is the console');
    for (const file of ['app.js', 'api.js', 'charts.js', 'style.css', 'favicon.svg']) {
      const r = await call(base, 'GET', `/ui/${file}`);
      assertEqual(r.status, 200, `GET /ui/${file}`);
    }
    assert(/javascript/.test((await call(base, 'GET', '/ui/app.js')).headers.get('content-type')), 'scripts are served as JavaScript');
    assertEqual((await call(base, 'GET', '/ui/nope.js')).status, 404, 'an unknown file');
    // Nothing the console loads may come from elsewhere.
    assert(!/https?:\/\//.test(ui.text.replace(/http:\/\/www\.w3\.org\/[^"]*/g, '')), 'no absolute URL in the page');
    keysRoute = (await call(base, 'GET', '/keys?limit=1')).status === 200;
    if (!keysRoute) console.log('       note: GET /keys is not served by this binary: the browsing test will fail');
  });

  await test('the console loads at 1280×800 and shows the default namespace', async () => {
    await page.setViewportSize(DESKTOP);
    await page.goto(`${base}/`);
    assertEqual(new URL(page.url()).pathname, '/ui', 'the page after the redirect');
    await page.locator('h1').filter({ hasText: 'PyKV console' }).waitFor();
    await waitForText(page.locator('#server-status'), /Connected/);
    await nsRow(page, '').waitFor();
    assertEqual(await nsRow(page, '').locator('th').textContent(), '(default)', 'the default namespace row');
  });

  await test('set a key in a new namespace with a TTL (Enter submits the form)', async () => {
    await page.fill('#set-ns', 'tenant_acme');
    await page.fill('#set-key', 'user:1');
    await page.fill('#set-value', 'alice');
    await page.fill('#set-ttl', '3600');
    await page.press('#set-ttl', 'Enter');
    await waitForText(page.locator('#key-result-title'), /Stored “user:1” in namespace tenant_acme \(expires in 3600 s\)/, 5000);
    // A JSON value, and input refused before it is sent.
    await page.fill('#set-key', 'config');
    await page.fill('#set-value', '{"theme": "dark"}');
    await page.check('#set-json');
    await page.fill('#set-ttl', '');
    await page.click('#set-submit');
    await waitForText(page.locator('#key-result-title'), /Stored “config”.*never expires/, 5000);
    await page.fill('#set-ttl', '1.5');
    await page.click('#set-submit');
    await waitForText(page.locator('#key-result-body'), /TTL: a whole number of seconds/, 5000);
    assertEqual(await page.getAttribute('#set-ttl', 'aria-invalid'), 'true', 'the TTL field is marked invalid');
    await page.fill('#set-ttl', '');
    await page.uncheck('#set-json');
    // The server's own detail: a namespace outside the character set.
    watch.expectFailures([/\/set$/]);
    await page.fill('#set-ns', 'bad name!');
    await page.press('#set-key', 'Enter');
    await waitForText(page.locator('#key-result-body'), /namespace.*\(422\)/, 5000);
    await page.fill('#set-ns', 'tenant_acme');
  });

  await test('get shows the value, and the error detail for a missing key', async () => {
    await page.fill('#get-ns', 'tenant_acme');
    await page.fill('#get-key', 'user:1');
    await page.press('#get-key', 'Enter');
    await waitForText(page.locator('#key-result-title'), /“user:1” in namespace tenant_acme \(string\)/, 5000);
    assertEqual(await page.textContent('#key-result-body'), 'alice', 'the value');
    await page.fill('#get-key', 'config');
    await page.click('#get-submit');
    await waitForText(page.locator('#key-result-body'), /"theme": "dark"/, 5000);
    // A key with every character a URL treats specially round-trips.
    const odd = 'reports/2026 q1?#%&+ é';
    assertEqual((await call(base, 'POST', '/set', { key: odd, value: 'draft', namespace: 'odd' })).status, 200, 'set the odd key');
    await page.fill('#get-ns', 'odd');
    await page.fill('#get-key', odd);
    await page.press('#get-key', 'Enter');
    await waitForText(page.locator('#key-result-body'), /^draft$/, 5000);
    await page.click('#delete-submit');
    await waitForText(page.locator('#key-result-title'), /^Deleted “reports\/2026 q1\?#%&\+ é”/, 5000);
    await page.fill('#get-ns', 'tenant_acme');
    watch.expectFailures([/\/get\/no%20such%20key/]);
    await page.fill('#get-key', 'no such key');
    await page.click('#get-submit');
    await waitForText(page.locator('#key-result-body'), /^Key not found \(404\)$/, 5000);
    assert(await page.locator('#key-result').evaluate((el) => el.classList.contains('error')), 'shown as an error');
  });

  // Enough keys for three pages of ten, in a second namespace too.
  for (let i = 0; i < 23; i += 1) {
    await call(base, 'POST', '/set', { key: `item:${String(i).padStart(2, '0')}`, value: i, namespace: 'tenant_acme' });
  }
  for (const key of ['a', 'b', 'c']) await call(base, 'POST', '/set', { key, value: key, namespace: 'beta' });

  await test('the namespace is listed with its key count, memory, hits and hit rate', async () => {
    const row = nsRow(page, 'tenant_acme');
    await waitForText(row.locator('td.keys'), /^25$/);
    const cells = await row.locator('td').allTextContents();
    assert(/\d+(\.\d)? (B|KiB)/.test(cells[1]), `memory is human-readable: ${cells[1]}`);
    assertEqual(cells[2], '2', 'hits (user:1 and config)');
    assertEqual(cells[3], '1', 'misses');
    assertEqual(cells[4], '66.7 %', 'hit rate');
    await waitForText(nsRow(page, 'beta').locator('td.keys'), /^3$/);
    const options = await page.locator('#namespace-list option').evaluateAll((os) => os.map((o) => o.value));
    assert(options.includes('tenant_acme'), 'the namespace fields suggest it');
  });

  await test('the table sorts by clicking its headers', async () => {
    assertEqual(await tableNames(page), ['', 'beta', 'tenant_acme', 'traffic'], 'by name, the default first');
    await page.click('th[data-sort="total_keys"] button');
    assertEqual(await page.getAttribute('th[data-sort="total_keys"]', 'aria-sort'), 'descending', 'aria-sort');
    const byKeys = await tableNames(page);
    assertEqual(byKeys.slice(0, 2), ['traffic', 'tenant_acme'], 'most keys first');
    assertEqual(byKeys.at(-1), '', 'the empty default namespace last');
    await page.click('th[data-sort="total_keys"] button');
    assertEqual(await page.getAttribute('th[data-sort="total_keys"]', 'aria-sort'), 'ascending', 'second click');
    assertEqual((await tableNames(page)).slice(0, 2), ['', 'beta'], 'fewest keys first');
    // By keyboard: Enter on a header.
    await page.focus('th[data-sort="name"] button');
    await page.keyboard.press('Enter');
    assertEqual(await tableNames(page), ['', 'beta', 'tenant_acme', 'traffic'], 'by name again');
    assertEqual(await page.getAttribute('th[data-sort="total_keys"]', 'aria-sort'), null, 'one sorted column');
  });

  await test('browse a namespace page by page, with a prefix filter', async () => {
    await nsRow(page, 'tenant_acme').locator('button[data-action="browse"]').click();
    await waitForText(page.locator('#browse-summary'), /tenant_acme: keys 1–25/, 5000);
    await page.selectOption('#browse-limit', '10');
    await page.click('#browse-submit');
    await waitForText(page.locator('#browse-summary'), /tenant_acme: keys 1–10\.$/, 5000);
    const first = await listedKeys(page);
    assertEqual(first, ['config', ...Array.from({ length: 9 }, (_, i) => `item:0${i}`)], 'page 1, in key order');
    assert(await page.isDisabled('#browse-prev'), 'no previous page on page 1');
    await page.click('#browse-next');
    await waitForText(page.locator('#browse-summary'), /keys 11–20\.$/, 5000);
    assertEqual((await listedKeys(page))[0], 'item:09', 'page 2 starts after page 1');
    await page.click('#browse-next');
    await waitForText(page.locator('#browse-summary'), /keys 21–25 \(the last\)/, 5000);
    assertEqual(await listedKeys(page), ['item:19', 'item:20', 'item:21', 'item:22', 'user:1'], 'page 3');
    assert(await page.isDisabled('#browse-next'), 'no next page after the last');
    assertEqual(await page.textContent('#browse-page'), 'Page 3', 'the page number');
    await screenshot(page, 'console-desktop-browse.png');
    await page.click('#browse-prev');
    await waitForText(page.locator('#browse-summary'), /keys 11–20\.$/, 5000);
    assertEqual((await listedKeys(page))[0], 'item:09', 'Previous shows page 2 again');
    await page.fill('#browse-prefix', 'user');
    await page.press('#browse-prefix', 'Enter');
    await waitForText(page.locator('#browse-summary'), /keys 1–1 starting with “user” \(the last\)/, 5000);
    assertEqual(await listedKeys(page), ['user:1'], 'the prefix filter');
    // A listed key opens in the get form.
    await page.click('#browse-list button');
    await waitForText(page.locator('#key-result-body'), /^alice$/, 5000);
    assertEqual(await page.inputValue('#get-key'), 'user:1', 'the key is put in the get form');
  });

  await test('a change made through the API appears in the live feed of the namespace browsed', async () => {
    await page.fill('#browse-prefix', '');
    await page.press('#browse-prefix', 'Enter');
    // Shown once the feed is open: changes from then on are in it.
    await waitForText(page.locator('#feed-status'), /^Live changes of tenant_acme:$/, 5000);
    const set = await call(base, 'POST', '/set?ns=tenant_acme', { key: 'live:1', value: { seen: true } });
    assertEqual(set.status, 200, 'POST /set');
    await waitForText(page.locator('#feed-list li').first(), /^set live:1 = \{"seen":true\}$/, 5000);
    assertEqual((await call(base, 'DELETE', '/delete/live:1?ns=tenant_acme')).status, 200, 'DELETE');
    await waitForText(page.locator('#feed-list li').first(), /^delete live:1$/, 5000);
    // Another namespace's changes do not show.
    await call(base, 'POST', '/set?ns=elsewhere', { key: 'live:2', value: 2 });
    await new Promise((r) => setTimeout(r, 300));
    assert(!(await page.textContent('#feed-list')).includes('live:2'), 'only the namespace browsed');
  });

  await test('delete a key', async () => {
    await page.fill('#get-ns', 'tenant_acme');
    await page.fill('#get-key', 'config');
    await page.click('#delete-submit');
    await waitForText(page.locator('#key-result-title'), /Deleted “config” from namespace tenant_acme/, 5000);
    await waitForText(nsRow(page, 'tenant_acme').locator('td.keys'), /^24$/);
  });

  await test('charts of operations per second, hit rate and keys per namespace are drawn', async () => {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && ((await chartPoints(page, 'chart-ops')) < 3 || (await chartPoints(page, 'chart-hits')) < 2)) {
      await page.waitForTimeout(500);
    }
    assert((await chartPoints(page, 'chart-ops')) >= 3, 'the operations chart has a line of 3 points or more');
    assert((await chartPoints(page, 'chart-hits')) >= 2, 'the hit-rate chart has a line');
    assert((await chartPoints(page, 'chart-keys')) >= 3, 'the keys chart has lines');
    const d = await page.getAttribute('#chart-ops path.line', 'd');
    assert(/^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+)+$/.test(d), `the line's path: ${d}`);
    const legend = await page.locator('#chart-keys-legend li').allTextContents();
    assert(legend.some((t) => /^tenant_acme: 24$/.test(t)), `the legend: ${legend.join(', ')}`);
    assert(/\d/.test(await page.textContent('#chart-ops-current')), 'the current rate is shown');
  });

  await test('clearing a namespace asks first; Cancel keeps it, Clear empties it', async () => {
    await nsRow(page, 'tenant_acme').locator('button[data-action="clear"]').click();
    const dialog = page.locator('#confirm-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert(/deletes its 24 keys/.test(await dialog.textContent()), 'the dialog says what will be lost');
    assertEqual(await page.evaluate(() => document.activeElement.id), 'confirm-cancel', 'Cancel has the focus');
    await screenshot(page, 'console-desktop-clear.png');
    await page.keyboard.press('Enter');
    await dialog.waitFor({ state: 'hidden' });
    await waitForText(page.locator('#ns-result'), /Nothing cleared/, 2000);
    assertEqual((await call(base, 'GET', '/namespaces/tenant_acme/keys')).json.total_keys, 24, 'nothing deleted on Cancel');

    await nsRow(page, 'tenant_acme').locator('button[data-action="clear"]').click();
    await dialog.waitFor({ state: 'visible' });
    await page.click('#confirm-ok');
    await waitForText(page.locator('#ns-result'), /Cleared tenant_acme: 24 keys deleted/, 5000);
    await nsRow(page, 'tenant_acme').waitFor({ state: 'detached', timeout: REFRESH_WAIT });
    assertEqual((await call(base, 'GET', '/namespaces/tenant_acme/keys')).json.total_keys, 0, 'the namespace is empty');
    assertEqual((await call(base, 'GET', '/namespaces/beta/keys')).json.total_keys, 3, 'another namespace is untouched');
  });

  await test('forms are labelled and reachable by keyboard in order', async () => {
    assertEqual(await unlabelledControls(page), [], 'controls without a label');
    const order = await tabOrder(page, 15);
    const expected = ['token', 'set-ns', 'set-key', 'set-value', 'set-json', 'set-ttl', 'set-submit', 'get-ns', 'get-key', 'get-submit'];
    const positions = expected.map((id) => order.indexOf(id));
    assert(positions.every((p) => p >= 0), `every control reached: ${order.join(' → ')}`);
    assert(positions.every((p, i) => i === 0 || p > positions[i - 1]), `in reading order: ${order.join(' → ')}`);
  });

  await test('no console errors at 1280×800', async () => {
    const errors = watch.take();
    assertEqual(errors, [], 'console errors');
  });

  await test('at phone width (375 px) nothing overflows and the forms work', async () => {
    await page.setViewportSize(PHONE);
    await page.reload();
    await waitForText(page.locator('#server-status'), /Connected/);
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    const wide = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
      .filter((el) => el.offsetParent && el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.table-wrap'))
      .map((el) => el.id || el.textContent));
    assertEqual(wide, [], 'controls cut off at the right edge');
    await page.fill('#set-ns', 'phone');
    await page.fill('#set-key', 'greeting');
    await page.fill('#set-value', 'hello from a phone');
    await page.press('#set-value', 'Enter');
    await waitForText(page.locator('#key-result-title'), /Stored “greeting” in namespace phone/, 5000);
    await waitForText(nsRow(page, 'phone').locator('td.keys'), /^1$/);
    await nsRow(page, 'phone').locator('button[data-action="browse"]').click();
    await waitForText(page.locator('#browse-summary'), /phone: keys 1–1/, 5000);
    await page.waitForTimeout(2500); // two more samples for the charts
    await screenshot(page, 'console-phone.png', true);
    await page.locator('#namespaces-card').evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await screenshot(page, 'console-phone-namespaces.png');
  });

  await test('no console errors at 375 px', async () => {
    assertEqual(watch.take(), [], 'console errors');
  });

  await test('the overview at 1280×800, after a few more samples', async () => {
    await page.setViewportSize(DESKTOP);
    await page.evaluate(() => window.scrollTo(0, 0));
    // The phone test reloaded the page, which starts a new history.
    await page.waitForTimeout(6000);
    assert((await chartPoints(page, 'chart-ops')) >= 4, 'the operations chart keeps growing');
    await screenshot(page, 'console-desktop.png', true);
    assertEqual(watch.take(), [], 'console errors');
  });

  await test('without /performance the operations are charted from /stats', async () => {
    const other = await context.newPage();
    const otherWatch = watchErrors(other);
    otherWatch.expectFailures([/\/performance$/]);
    let asked = 0;
    await other.route(/\/performance$/, (route) => {
      asked += 1;
      return route.fulfill({ status: 404, contentType: 'application/json', body: '{"detail":"no route"}' });
    });
    await other.goto(`${base}/ui`);
    await waitForText(other.locator('#charts-hint'), /operations from \/stats reads/);
    const deadline = Date.now() + REFRESH_WAIT;
    while (Date.now() < deadline && (await chartPoints(other, 'chart-ops')) < 2) await other.waitForTimeout(300);
    assert((await chartPoints(other, 'chart-ops')) >= 2, 'the operations chart is drawn');
    assertEqual(asked, 1, 'a 404 is not asked again');
    assert(await other.locator('#auth-banner').isHidden(), 'no token message');
    assertEqual(otherWatch.take(), [], 'console errors');
    await other.close();
  });

  await test('a 401 or 403 answer shows a message pointing at the token field', async () => {
    // A second server with tokens made by `pykv token create`: an admin
    // token, and a tenant's that may write namespace `tenant_a` only.
    const dataDir = tempDir('pykv-ui-auth-');
    const admin = createToken(dataDir, ['--admin']);
    const tenant = createToken(dataDir, ['--ns', 'tenant_a', '--access', 'write']);
    const secured = await startServer(dataDir);
    assertEqual((await call(secured.base, 'GET', '/stats')).status, 401, 'the API needs a token');
    assertEqual((await call(secured.base, 'GET', '/ui')).status, 200, 'the console does not');
    const authPage = await context.newPage();
    await authPage.setViewportSize(DESKTOP);
    const authWatch = watchErrors(authPage);
    authWatch.expectFailures([/\/stats$/, /\/performance$/, /\/set$/]);
    await authPage.goto(`${secured.base}/ui`);
    const banner = authPage.locator('#auth-banner');
    await banner.waitFor({ state: 'visible', timeout: REFRESH_WAIT });
    assert(/401.*“API token” field/.test(await banner.textContent()), 'the banner points at the token field');
    assertEqual(await authPage.getAttribute('#token', 'aria-invalid'), 'true', 'the token field is marked');
    await waitForText(authPage.locator('#server-status'), /Refused \(401\)/);
    await screenshot(authPage, 'console-desktop-token.png');
    await authPage.click('#auth-focus');
    assertEqual(await authPage.evaluate(() => document.activeElement.id), 'token', 'the button focuses the token field');

    // The tenant's token: its own namespace works, the default one is 403.
    await authPage.fill('#token', tenant);
    await authPage.press('#token', 'Enter');
    await waitForText(authPage.locator('#server-status'), /Connected/);
    await banner.waitFor({ state: 'hidden' });
    assertEqual(await authPage.evaluate(() => sessionStorage.getItem('pykv.console.token')), tenant, 'kept in sessionStorage');
    await authPage.fill('#set-ns', 'tenant_a');
    await authPage.fill('#set-key', 'mine');
    await authPage.fill('#set-value', 'yes');
    await authPage.press('#set-value', 'Enter');
    await waitForText(authPage.locator('#key-result-title'), /Stored “mine” in namespace tenant_a/, 5000);
    await waitForText(nsRow(authPage, 'tenant_a').locator('td.keys'), /^1$/);
    await authPage.fill('#set-ns', '');
    await authPage.press('#set-value', 'Enter');
    await waitForText(authPage.locator('#key-result-body'), /\(403\)\. Use a token allowed here in the “API token” field/, 5000);
    await waitForText(banner, /403.*“API token” field/);
    // The refresh that follows does not hide it: the refusal was the form's.
    await authPage.waitForTimeout(2500);
    assert(await banner.isVisible(), 'the banner stays until the token changes');

    await authPage.fill('#token', admin);
    await authPage.press('#token', 'Enter');
    await banner.waitFor({ state: 'hidden' });
    await authPage.press('#set-value', 'Enter');
    await waitForText(authPage.locator('#key-result-title'), /Stored “mine” in the default namespace/, 5000);
    await authPage.reload();
    assertEqual(await authPage.inputValue('#token'), admin, 'the token survives a reload of the tab');
    await waitForText(authPage.locator('#server-status'), /Connected/);
    await waitForText(authPage.locator('#charts-hint'), /from \/performance/);
    assertEqual(authWatch.take(), [], 'console errors');
    await authPage.close();
  });

  await stopTraffic();
  const stray = watch.take();
  if (stray.length) {
    results.failed += 1;
    console.log(`FAIL - console errors after the tests\n       ${stray.join('\n       ')}`);
  }
}

async function cleanup() {
  for (const step of cleanups.splice(0)) {
    try {
      await step();
    } catch {
      // Best effort: a failed cleanup must not hide the results.
    }
  }
}

main()
  .catch((error) => {
    results.failed += 1;
    console.log(`FAIL - setting up: ${error && error.stack ? error.stack : error}`);
  })
  .finally(async () => {
    await cleanup();
    console.log(`${results.passed} passed, ${results.failed} failed`);
    process.exit(results.failed === 0 ? 0 : 1);
  });

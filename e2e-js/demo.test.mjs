// The demo page in headless Chromium (Debian's, driven by playwright-core): two users sign in at
// dev-idp, connect through negotiate, join room-1 and send to it over the WebSocket (hub methods the
// app's upstream function authorizes), see a refused invocation's error, and exchange a direct
// message through the sendToUser HTTP function.
// A screenshot is kept in e2e-js/artifacts/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot, startStack } from './stack-helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HANG_GUARD_MS = 180_000;
// Playwright's own per-action wait; these are polls for the page to reach a state, not timings.
const ACTION_LIMIT_MS = 30_000;

async function openDemo(browser, stack, user) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_LIMIT_MS);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${stack.appUrl}/api/app/?idp=${encodeURIComponent(stack.idpUrl)}`);
  await page.fill('#user', user);
  await page.click('#sign-in');
  await page.locator('#signed-in-as').filter({ hasText: `Signed in as ${user}` }).waitFor();
  await page.click('#connect');
  await page.locator('#status').filter({ hasText: `Connected as ${user}` }).waitFor();
  return { page, errors };
}

test('two users on the demo page exchange a group and a direct message', { timeout: HANG_GUARD_MS }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/test does this)`);
  const stack = await startStack(t);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());

  const alice = await openDemo(browser, stack, 'alice');
  const bob = await openDemo(browser, stack, 'bob');
  assert.equal(await alice.page.textContent('#connection-user'), 'alice', 'the user id the SignalR token carries');

  await alice.page.fill('#group', 'room-1');
  await alice.page.click('#join');
  await alice.page.locator('#joined-groups').filter({ hasText: 'room-1' }).waitFor();

  // The policy allows room-* only: the invocation's promise rejects with the upstream's error.
  await alice.page.fill('#group', 'staff');
  await alice.page.click('#join');
  await alice.page.locator('#invoke-error').filter({ hasText: 'joinGroup refused: forbidden: join' }).waitFor();
  assert.doesNotMatch(await alice.page.textContent('#joined-groups'), /staff/);

  await bob.page.fill('#group', 'room-1');
  await bob.page.fill('#send-group-text', 'Hello from bob to room-1');
  await bob.page.click('#send-group');
  const fromBob = alice.page.locator('#messages li').filter({ hasText: 'Hello from bob to room-1' });
  await fromBob.waitFor();
  // Sent over the WebSocket: the sender is the connection's verified user, stamped by the upstream.
  assert.equal(await fromBob.locator('.from').getAttribute('data-source'), 'signalr-connection');
  assert.match(await fromBob.locator('.from').textContent(), /^bob/, 'the verified sender is shown');

  await alice.page.fill('#send-user-id', 'bob');
  await alice.page.fill('#send-user-text', 'Hi bob, this is just for you');
  await alice.page.click('#send-user');
  const fromAlice = bob.page.locator('#messages li').filter({ hasText: 'Hi bob, this is just for you' });
  await fromAlice.waitFor();
  assert.match(await fromAlice.locator('.from').textContent(), /^alice/, 'the verified sender is shown');
  assert.equal(await fromAlice.locator('.from').getAttribute('data-source'), 'jwt', 'sent through the HTTP function');

  const artifacts = join(repoRoot, 'e2e-js', 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  await alice.page.screenshot({ path: join(artifacts, 'demo-alice.png'), fullPage: true });
  await bob.page.screenshot({ path: join(artifacts, 'demo-bob.png'), fullPage: true });
  assert.deepEqual(alice.errors, [], 'no script errors on alice\'s page');
  assert.deepEqual(bob.errors, [], 'no script errors on bob\'s page');
});

// The demo page in headless Chromium (Debian's, driven by playwright-core): two users sign in at
// dev-idp, connect through negotiate, join room-1 and send to it over the WebSocket (hub methods the
// app's upstream function authorizes), see a refused invocation's error, and exchange a direct
// message through the sendToUser HTTP function. Then the reference-client behaviour: a sign-in
// session that ends (and a token that comes already expired) asks the user to sign in again, a
// SignalR emulator restart is survived by automatic reconnect (groups joined again), and signing in
// as someone else disconnects the previous user first.
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

const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launch(t) {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/test does this)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
  t.after(() => browser.close());
  return browser;
}

/** Opens the demo page (extra `query` parameters as the page reads them) without signing in. */
async function loadDemo(browser, stack, query = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_LIMIT_MS);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const search = new URLSearchParams({ idp: stack.idpUrl, ...query });
  await page.goto(`${stack.appUrl}/api/app/?${search}`);
  return { page, errors };
}

async function signIn(page, user) {
  await page.fill('#user', user);
  await page.click('#sign-in');
  await page.locator('#signed-in-as').filter({ hasText: `Signed in as ${user}` }).waitFor();
}

async function connect(page, user) {
  await page.click('#connect');
  await page.locator('#status').filter({ hasText: `Connected as ${user}` }).waitFor();
}

async function openDemo(browser, stack, user, query = {}) {
  const demo = await loadDemo(browser, stack, query);
  await signIn(demo.page, user);
  await connect(demo.page, user);
  return demo;
}

test('two users on the demo page exchange a group and a direct message', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const browser = await launch(t);

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

test('when the sign-in session ends the page asks to sign in again and is no longer connected', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const browser = await launch(t);
  // A 20 s session of 10 s tokens: the cached token is renewed silently while the session lasts,
  // then the page must ask for a new sign-in rather than keep showing a dead connection.
  const { page, errors } = await openDemo(browser, stack, 'alice', { session: '20', tokenLifetime: '10' });
  await page.locator('#status').filter({ hasText: 'Sign in again' }).waitFor({ timeout: 90_000 });
  assert.match(await page.textContent('#signed-in-as'), /Please sign in again/);
  assert.match(await page.getAttribute('#signed-in-as', 'class'), /\bbad\b/);
  await page.locator('#connection-state').filter({ hasText: 'disconnected' }).waitFor();
  for (const id of ['#join', '#send-group', '#send-user']) assert.ok(await page.isDisabled(id), `${id} is disabled`);
  assert.ok(await page.isDisabled('#connect'), 'no connecting without a new sign-in');

  // Signing in again works without a reload.
  await signIn(page, 'alice');
  await connect(page, 'alice');
  assert.deepEqual(errors, []);
});

test('a token that is already expired is never shown as a valid sign-in', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const browser = await launch(t);
  const { page, errors } = await loadDemo(browser, stack, { tokenLifetime: '-300' });
  await page.fill('#user', 'alice');
  await page.click('#sign-in');
  await page.locator('#signed-in-as').filter({ hasText: 'Sign-in failed' }).waitFor();
  assert.match(await page.textContent('#signed-in-as'), /already expired/);
  assert.match(await page.getAttribute('#signed-in-as', 'class'), /\bbad\b/);
  assert.ok(await page.isDisabled('#connect'));
  assert.equal(await page.textContent('#status'), 'Signed out');
  assert.deepEqual(errors, []);
});

test('the page reconnects by itself after the SignalR emulator restarts, and joins its groups again', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const browser = await launch(t);
  const alice = await openDemo(browser, stack, 'alice');
  await alice.page.fill('#group', 'room-1');
  await alice.page.click('#join');
  await alice.page.locator('#joined-groups').filter({ hasText: 'room-1' }).waitFor();

  await stack.restartEmulator();
  await alice.page.locator('#log li').filter({ hasText: 'reconnected' }).first().waitFor({ timeout: 90_000 });
  await alice.page.locator('#status').filter({ hasText: 'Connected as alice' }).waitFor({ timeout: 90_000 });
  await alice.page.locator('#log li').filter({ hasText: 'joinGroup("room-1") → ok' }).nth(1).waitFor();

  // The new connection is in room-1 again: a message from another user reaches it.
  const bob = await openDemo(browser, stack, 'bob');
  await bob.page.fill('#group', 'room-1');
  await bob.page.fill('#send-group-text', 'after the restart');
  await bob.page.click('#send-group');
  await alice.page.locator('#messages li').filter({ hasText: 'after the restart' }).waitFor();
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test('signing in as someone else disconnects the previous user first', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const browser = await launch(t);
  const { page, errors } = await openDemo(browser, stack, 'alice');
  await page.fill('#group', 'room-1');
  await page.click('#join');
  await page.locator('#joined-groups').filter({ hasText: 'room-1' }).waitFor();

  await signIn(page, 'carol');
  await page.locator('#connection-state').filter({ hasText: 'disconnected' }).waitFor();
  assert.equal(await page.textContent('#status'), 'Signed in as carol');
  assert.equal(await page.textContent('#joined-groups'), 'none');
  const log = await page.locator('#log li').allTextContents(); // newest first
  const disconnected = log.findIndex((line) => line.includes('disconnected'));
  const signedIn = log.findIndex((line) => line.includes('signed in as carol'));
  assert.ok(disconnected > signedIn && signedIn >= 0, `alice was disconnected before carol signed in: ${log.join(' | ')}`);

  await connect(page, 'carol');
  assert.equal(await page.textContent('#connection-user'), 'carol');
  // A direct message to alice no longer reaches this page; one to carol does.
  const bob = await openDemo(browser, stack, 'bob');
  for (const [index, [user, text]] of [['alice', 'for alice'], ['carol', 'for carol']].entries()) {
    await bob.page.fill('#send-user-id', user);
    await bob.page.fill('#send-user-text', text);
    await bob.page.click('#send-user');
    await bob.page.locator('#log li').filter({ hasText: 'sendToUser → 202' }).nth(index).waitFor();
  }
  await page.locator('#messages li').filter({ hasText: 'for carol' }).waitFor();
  assert.equal(await page.locator('#messages li').filter({ hasText: 'for alice' }).count(), 0,
    'the message to alice, sent before the one to carol, did not reach carol\'s page');
  assert.deepEqual(errors, []);
});

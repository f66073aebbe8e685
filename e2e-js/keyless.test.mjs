// The whole local stack with no access key anywhere (issue 13), with the real @microsoft/signalr
// client: the handler gets a managed-identity token from dev-idp, a temporary key from the SignalR
// emulator (local auth disabled), and mints client tokens with kid = KeyId; the host emulator applies
// group and message outputs with the managed identity's token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inbox } from './emulator-helpers.mjs';
import {
  TARGET, callFunction, connection, getToken, startKeylessStack,
} from './stack-helpers.mjs';

// A hang guard, not a timing assertion.
const HANG_GUARD_MS = 120_000;

function jwtPart(token, index) {
  return JSON.parse(Buffer.from(token.split('.')[index], 'base64url').toString('utf8'));
}

/** Negotiates until the handler has its first temporary key (it fetches it in the background at start). */
async function negotiateWhenReady(stack, token) {
  for (;;) {
    const negotiated = await callFunction(stack, 'negotiate', token);
    if (negotiated.status !== 503) return negotiated;
    assert.equal(negotiated.body.error, 'service_auth_unavailable', negotiated.text);
    await new Promise((resolveLater) => setTimeout(resolveLater, 100));
  }
}

test('keyless: negotiate, connect, group and user delivery with no access key', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startKeylessStack(t);
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((user) => getToken(stack, user)));

  const negotiated = await negotiateWhenReady(stack, alice);
  assert.equal(negotiated.status, 200, negotiated.text);
  assert.match(jwtPart(negotiated.body.accessToken, 0).kid, /^t-/, 'signed with a temporary key');
  assert.equal(jwtPart(negotiated.body.accessToken, 1)['asrs.s.uid'], 'alice');

  const aliceHub = connection(stack, alice);
  const aliceInbox = new Inbox(aliceHub, [TARGET]);
  await aliceHub.start();
  t.after(() => aliceHub.stop());
  const bobHub = connection(stack, bob);
  const bobInbox = new Inbox(bobHub, [TARGET]);
  await bobHub.start();
  t.after(() => bobHub.stop());

  const joined = await callFunction(stack, 'addToGroup', alice, { group: 'room-1' });
  assert.equal(joined.status, 202, joined.text);
  const sent = await callFunction(stack, 'sendToGroup', bob, {
    group: 'room-1', target: TARGET, arguments: [{ text: 'hello room-1' }],
  });
  assert.equal(sent.status, 202, sent.text);
  const received = await aliceInbox.next();
  assert.deepEqual(received.args, [{ sender: 'bob', source: 'jwt' }, { text: 'hello room-1' }]);

  const direct = await callFunction(stack, 'sendToUser', alice, {
    userId: 'bob', target: TARGET, arguments: [{ text: 'just for bob' }],
  });
  assert.equal(direct.status, 202, direct.text);
  const message = await bobInbox.next();
  assert.deepEqual(message.args, [{ sender: 'alice', source: 'jwt' }, { text: 'just for bob' }]);

  const logs = `${stack.host.output()}`;
  assert.ok(logs.includes('SignalR temporary key fetched'), 'the start-up check succeeded');
  assert.ok(!logs.includes('eyJ'), 'no token in the host or handler log');
});

// Hub-method calls in keyless mode: the emulator authenticates its upstream requests with its
// managed-identity bearer (no signature: there is no key), and the handler checks that token
// (SIGNALR_UPSTREAM_AUTH=managedIdentity) before it runs joinGroup / sendToGroup.
test('keyless: invoke("joinGroup") over the WebSocket and group delivery, authenticated by the managed-identity bearer', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startKeylessStack(t);
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((user) => getToken(stack, user)));
  const ready = await negotiateWhenReady(stack, alice);
  assert.equal(ready.status, 200, ready.text);

  const aliceHub = connection(stack, alice);
  const aliceInbox = new Inbox(aliceHub, [TARGET]);
  await aliceHub.start();
  t.after(() => aliceHub.stop());
  const bobHub = connection(stack, bob);
  await bobHub.start();
  t.after(() => bobHub.stop());

  const joined = await aliceHub.invoke('joinGroup', 'room-7');
  assert.deepEqual(joined, { action: 'add', group: 'room-7', userId: 'alice' });
  const sent = await bobHub.invoke('sendToGroup', 'room-7', TARGET, { text: 'hello keyless room-7' });
  assert.deepEqual(sent, { sent: true, target: TARGET, group: 'room-7' });
  const received = await aliceInbox.next();
  assert.deepEqual(received.args[0], { sender: 'bob', source: 'signalr-connection' });
  assert.equal(received.args[1].text, 'hello keyless room-7');

  await assert.rejects(aliceHub.invoke('joinGroup', 'staff'), { message: 'forbidden: join' });
  const logs = `${stack.host.output()}\n${stack.emulator.output()}`;
  assert.ok(!logs.includes('eyJ'), 'no token in any log');
});

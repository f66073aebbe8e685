// The whole local stack with real processes and the real @microsoft/signalr client: tokens from
// dev-idp, negotiate through the host emulator and the real handler, WebSockets to the SignalR
// emulator, groups and messages through the app's functions.
//
// "Did not receive" is shown without waiting for a timeout: after the message under test, the
// same service sends each bystander a marker on the same connection, and the marker must be the
// first thing that bystander receives (one connection's messages arrive in order).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HubConnectionState } from '@microsoft/signalr';
import { Inbox } from './emulator-helpers.mjs';
import {
  TARGET, bundles, callFunction, connection, getToken, jwtPayload, startStack,
} from './stack-helpers.mjs';

// A hang guard, not a timing assertion: a healthy run of each test takes a few seconds.
const HANG_GUARD_MS = 120_000;

async function connected(t, stack, token, headers) {
  const hub = connection(stack, token, headers);
  const inbox = new Inbox(hub, [TARGET]);
  await hub.start();
  t.after(() => hub.stop());
  return { hub, inbox };
}

/** Sends `marker` to `userId` and asserts it is the next message `inbox` receives. */
async function assertNothingElseArrived(stack, senderToken, userId, inbox, label) {
  const marker = `marker for ${userId}`;
  const sent = await callFunction(stack, 'sendToUser', senderToken, {
    userId, target: TARGET, arguments: [{ text: marker }],
  });
  assert.equal(sent.status, 202, `marker to ${userId}: ${sent.text}`);
  const next = await inbox.next();
  assert.equal(next.args[1].text, marker, `${label} received something before its marker`);
}

test('group and direct messages reach exactly the right users', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((user) => getToken(stack, user)));

  const negotiated = await callFunction(stack, 'negotiate?negotiateVersion=1', alice);
  assert.equal(negotiated.status, 200, negotiated.text);
  assert.equal(jwtPayload(negotiated.body.accessToken)['asrs.s.uid'], 'alice');

  const aliceConn = await connected(t, stack, alice);
  const bobTab1 = await connected(t, stack, bob);
  const bobTab2 = await connected(t, stack, bob);
  const carolConn = await connected(t, stack, carol);

  const joined = await callFunction(stack, 'addToGroup', alice, { group: 'room-1' });
  assert.equal(joined.status, 202, joined.text);

  // bob claims to be root; the handler's first argument names the verified sender anyway.
  const sent = await callFunction(stack, 'sendToGroup', bob, {
    group: 'room-1', target: TARGET, arguments: [{ sender: 'root', from: 'root', text: 'hello room-1' }],
  });
  assert.equal(sent.status, 202, sent.text);
  const received = await aliceConn.inbox.next();
  assert.deepEqual(received.args, [
    { sender: 'bob', source: 'jwt' },
    { sender: 'root', from: 'root', text: 'hello room-1' },
  ]);
  await assertNothingElseArrived(stack, bob, 'carol', carolConn.inbox, 'carol (not a member)');

  const direct = await callFunction(stack, 'sendToUser', alice, {
    userId: 'bob', target: TARGET, arguments: [{ from: 'alice', text: 'just for bob' }],
  });
  assert.equal(direct.status, 202, direct.text);
  for (const [tab, name] of [[bobTab1, 'first'], [bobTab2, 'second']]) {
    const message = await tab.inbox.next();
    assert.deepEqual(message.args[0], { sender: 'alice', source: 'jwt' }, `bob's ${name} connection`);
    assert.equal(message.args[1].text, 'just for bob', `bob's ${name} connection`);
  }
  await assertNothingElseArrived(stack, bob, 'alice', aliceConn.inbox, 'alice');
  await assertNothingElseArrived(stack, bob, 'carol', carolConn.inbox, 'carol');
});

test('forged principal headers and body-level "headers" do not change the verified identity', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const [bob, carol] = await Promise.all(['bob', 'carol'].map((user) => getToken(stack, user)));
  const forgedHeaders = { 'x-ms-client-principal-id': 'bob', 'x-ms-client-principal-name': 'bob' };
  const forgedBody = { headers: { 'x-ms-client-principal-id': 'bob', authorization: `Bearer ${bob}` } };

  const negotiated = await callFunction(stack, 'negotiate?negotiateVersion=1', carol, forgedBody, forgedHeaders);
  assert.equal(negotiated.status, 200, negotiated.text);
  assert.equal(jwtPayload(negotiated.body.accessToken)['asrs.s.uid'], 'carol');

  const joined = await callFunction(stack, 'addToGroup', carol, { group: 'room-7' }, forgedHeaders);
  assert.equal(joined.status, 202, joined.text);
  assert.equal(joined.body.userId, 'carol', 'the group action acts for the verified caller');
  const smuggled = await callFunction(stack, 'addToGroup', carol, { group: 'room-7', ...forgedBody });
  assert.equal(smuggled.status, 400, `a body-level "headers" object is refused outright: ${smuggled.text}`);

  // A connection negotiated with forged headers still belongs to carol: a message to bob does
  // not reach it, and a message to carol does.
  const bobConn = await connected(t, stack, bob);
  const forgedConn = await connected(t, stack, carol, forgedHeaders);
  const toBob = await callFunction(stack, 'sendToUser', carol, {
    userId: 'bob', target: TARGET, arguments: [{ text: 'to the real bob' }],
  });
  assert.equal(toBob.status, 202, toBob.text);
  const toRealBob = await bobConn.inbox.next();
  assert.deepEqual(toRealBob.args[0], { sender: 'carol', source: 'jwt' }, 'forged headers do not change the sender');
  assert.equal(toRealBob.args[1].text, 'to the real bob');
  await assertNothingElseArrived(stack, bob, 'carol', forgedConn.inbox, 'the forged-header connection');
});

test('an expired app token gets 401 at negotiate and no connection', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const expired = await getToken(stack, 'alice', { lifetimeSeconds: -600 });

  const negotiated = await callFunction(stack, 'negotiate?negotiateVersion=1', expired);
  assert.equal(negotiated.status, 401);
  assert.equal(negotiated.body.error, 'invalid_token');

  const hub = connection(stack, expired);
  await assert.rejects(hub.start(), /Status code '401'/);
  assert.equal(hub.state, HubConnectionState.Disconnected);
});

test('the checked-in browser bundle is the one the lockfile installs', () => {
  const { committed, installed } = bundles();
  assert.ok(committed.equals(installed), 'copy node_modules/@microsoft/signalr/dist/browser/signalr.min.js to www/lib/');
});

// The lifetime of a connection with the real @microsoft/signalr client (issue 14): the handler's
// tokens carry the login's end (`asrs.s.aeo`), the SignalR emulator closes the connection then
// with a close message that allows reconnecting, and the client reconnects through negotiate with
// a fresh app token; a connection whose login is refreshed through the app's `refresh` function
// stays open past its old end.
//
// No @microsoft/signalr on npm ships `withAuthenticationRefresh` yet (the newest is 10.0.11; the
// 2026 TypeScript client is unreleased), so the refresh is driven as that client would drive it:
// `POST {app}/refresh?id=<connection token>` with a fresh app token, by fetch. The connection
// token is the one the real client received from the emulator's negotiate, recorded by an
// HttpClient wrapper.
//
// No timed assertions: every wait is for an event, bounded only by the hang guard; "not before
// the end" compares the close's arrival with the `aeo` timestamp.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DefaultHttpClient, HttpTransportType, HubConnectionBuilder, HubConnectionState, LogLevel, NullLogger,
} from '@microsoft/signalr';
import { Inbox } from './emulator-helpers.mjs';
import { TARGET, callFunction, getToken, jwtPayload, repoRoot, startStack } from './stack-helpers.mjs';
import { join } from 'node:path';

const HANG_GUARD_MS = 120_000;
/** App tokens that end while the test watches. */
const SHORT_LIFETIME_SECONDS = 4;

/** The client's own HTTP client, recording every negotiate answer (app's and emulator's). */
class RecordingHttpClient extends DefaultHttpClient {
  constructor() {
    super(NullLogger.instance);
    this.negotiations = [];
  }

  async send(request) {
    const response = await super.send(request);
    if (new URL(request.url).pathname.endsWith('/negotiate') && typeof response.content === 'string') {
      this.negotiations.push(JSON.parse(response.content));
    }
    return response;
  }

  /** The app's last negotiate answer: {url, accessToken, tokenLifetimeSeconds}. */
  lastAppAnswer() {
    return this.negotiations.filter((answer) => answer.accessToken && answer.url).at(-1);
  }

  /** The connection token of the last connection the emulator handed out. */
  lastConnectionToken() {
    return this.negotiations.filter((answer) => answer.connectionToken).at(-1).connectionToken;
  }
}

function hubConnection(stack, tokenFactory, { reconnect }) {
  const httpClient = new RecordingHttpClient();
  let builder = new HubConnectionBuilder()
    .withUrl(`${stack.appUrl}/api`, {
      accessTokenFactory: tokenFactory,
      transport: HttpTransportType.WebSockets,
      httpClient,
    })
    .configureLogging(LogLevel.None);
  if (reconnect) builder = builder.withAutomaticReconnect([0, 250, 500, 1000, 2000, 5000]);
  return { hub: builder.build(), httpClient };
}

const aeoOf = (token) => Number(jwtPayload(token)['asrs.s.aeo']);

test('a connection is closed at the end of its login and reconnects with a fresh token', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  let calls = 0;
  const factory = async () => {
    calls += 1;
    // The first login is about to end; the one the reconnect asks for is fresh.
    return getToken(stack, 'alice', calls === 1 ? { lifetimeSeconds: SHORT_LIFETIME_SECONDS } : {});
  };
  const { hub, httpClient } = hubConnection(stack, factory, { reconnect: true });
  const inbox = new Inbox(hub, [TARGET]);
  const reconnecting = new Promise((resolve) => hub.onreconnecting((error) => resolve({ at: Date.now(), error })));
  const reconnected = new Promise((resolve) => hub.onreconnected((id) => resolve(id)));
  await hub.start();
  t.after(() => hub.stop());
  const firstId = hub.connectionId;
  const first = httpClient.lastAppAnswer();
  const firstAeo = aeoOf(first.accessToken);
  assert.equal(jwtPayload(first.accessToken)['asrs.s.coae'], 'true');
  assert.ok(first.tokenLifetimeSeconds <= SHORT_LIFETIME_SECONDS, JSON.stringify(first));

  const closed = await reconnecting;
  assert.ok(closed.at >= firstAeo * 1000, `closed at ${closed.at}, before the login's end ${firstAeo * 1000}`);
  const secondId = await reconnected;
  assert.notEqual(secondId, firstId);
  assert.equal(calls, 2, 'the reconnect asked the app for a fresh token');
  const second = httpClient.lastAppAnswer();
  assert.ok(aeoOf(second.accessToken) > firstAeo, 'the new connection ends with the new login');
  assert.equal(jwtPayload(second.accessToken)['asrs.s.uid'], 'alice');

  // The reconnected connection is alice's: a message to her arrives.
  const sender = await getToken(stack, 'bob');
  const sent = await callFunction(stack, 'sendToUser', sender, { userId: 'alice', target: TARGET, arguments: [{ text: 'still here' }] });
  assert.equal(sent.status, 202, sent.text);
  assert.equal((await inbox.next()).args[1].text, 'still here');
});

test('a refreshed connection stays open past its old end; an unrefreshed one closes', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const short = await getToken(stack, 'alice', { lifetimeSeconds: SHORT_LIFETIME_SECONDS });
  const refreshed = hubConnection(stack, () => short, { reconnect: false });
  const control = hubConnection(stack, () => short, { reconnect: false });
  const inbox = new Inbox(refreshed.hub, [TARGET]);
  let refreshedClosed = false;
  refreshed.hub.onclose(() => { refreshedClosed = true; });
  const controlClosed = new Promise((resolve) => control.hub.onclose(() => resolve(Date.now())));
  await refreshed.hub.start();
  await control.hub.start();
  t.after(() => refreshed.hub.stop());
  t.after(() => control.hub.stop());
  const oldAeo = aeoOf(refreshed.httpClient.lastAppAnswer().accessToken);
  assert.equal(aeoOf(control.httpClient.lastAppAnswer().accessToken), oldAeo);

  // What withAuthenticationRefresh does: POST {app}/refresh?id=<connection token> with a fresh
  // app token.
  const fresh = await getToken(stack, 'alice');
  const id = encodeURIComponent(refreshed.httpClient.lastConnectionToken());
  const answer = await callFunction(stack, `refresh?id=${id}`, fresh);
  assert.equal(answer.status, 200, answer.text);
  const newAeo = aeoOf(answer.body.accessToken);
  assert.equal(newAeo, jwtPayload(fresh).exp);
  assert.equal(jwtPayload(answer.body.accessToken)['asrs.s.uid'], 'alice');
  assert.ok(answer.body.tokenLifetimeSeconds > SHORT_LIFETIME_SECONDS, answer.text);

  // The emulator closes every connection past its end in the same scan: once the control is
  // closed, the refreshed one would have been too.
  const controlAt = await controlClosed;
  assert.ok(controlAt >= oldAeo * 1000);
  assert.equal(refreshedClosed, false);
  assert.equal(refreshed.hub.state, HubConnectionState.Connected);
  const sender = await getToken(stack, 'bob');
  const sent = await callFunction(stack, 'sendToUser', sender, { userId: 'alice', target: TARGET, arguments: [{ text: 'after the old end' }] });
  assert.equal(sent.status, 202, sent.text);
  assert.equal((await inbox.next()).args[1].text, 'after the old end');
});

test('refresh refuses another user, an unknown connection, GET and a missing id', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const alice = await getToken(stack, 'alice');
  const { hub, httpClient } = hubConnection(stack, () => alice, { reconnect: false });
  await hub.start();
  t.after(() => hub.stop());
  const id = encodeURIComponent(httpClient.lastConnectionToken());

  const mallory = await getToken(stack, 'mallory');
  const stolen = await callFunction(stack, `refresh?id=${id}`, mallory);
  assert.equal(stolen.status, 403, stolen.text);
  assert.equal(stolen.body.error, 'permission_change_rejected');
  assert.equal(hub.state, HubConnectionState.Connected);

  const unknown = await callFunction(stack, 'refresh?id=no-such-connection', alice);
  assert.equal(unknown.status, 404, unknown.text);
  assert.equal(unknown.body.error, 'connection_not_found');

  const missing = await callFunction(stack, 'refresh', alice);
  assert.equal(missing.status, 400, missing.text);
  assert.equal(missing.body.error, 'missing_connection_token');

  const get = await fetch(`${stack.appUrl}/api/refresh?id=${id}`, { headers: { authorization: `Bearer ${alice}` } });
  assert.equal(get.status, 405);
  assert.equal(await get.text(), '');
});

test('a refresh that moves a user to another team removes them from the old team\'s group', { timeout: HANG_GUARD_MS }, async (t) => {
  // The chat test policy lets a user join `team.{claim:team}` and send to it as a member (the
  // demo's policy.json allows only what the demo needs).
  const stack = await startStack(t, {
    AUTH_FORWARD_CLAIMS: 'team',
    POLICY_FILE: join(repoRoot, 'tests', 'fixtures', 'policy-chat.json'),
  });
  const red = { claims: { team: 'red' } };
  const aliceRed = await getToken(stack, 'alice', red);
  const bobRed = await getToken(stack, 'bob', red);
  const carol = await getToken(stack, 'carol');
  const alice = hubConnection(stack, () => aliceRed, { reconnect: false });
  const inbox = new Inbox(alice.hub, [TARGET]);
  await alice.hub.start();
  t.after(() => alice.hub.stop());
  for (const token of [aliceRed, bobRed]) {
    const joined = await callFunction(stack, 'addToGroup', token, { group: 'team.red' });
    assert.equal(joined.status, 202, joined.text);
  }
  const before = await callFunction(stack, 'sendToGroup', bobRed, { group: 'team.red', target: TARGET, arguments: [{ text: 'red 1' }] });
  assert.equal(before.status, 202, before.text);
  assert.equal((await inbox.next()).args[1].text, 'red 1');

  const aliceBlue = await getToken(stack, 'alice', { claims: { team: 'blue' } });
  const id = encodeURIComponent(alice.httpClient.lastConnectionToken());
  const refreshed = await callFunction(stack, `refresh?id=${id}`, aliceBlue);
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.equal(jwtPayload(refreshed.body.accessToken).team, 'blue');
  assert.match(stack.host.output(), /may no longer join \\"team\.red\\"|may no longer join "team\.red"/);

  // The next message to the old team does not reach alice: the marker sent after it is the
  // first thing she receives.
  const after = await callFunction(stack, 'sendToGroup', bobRed, { group: 'team.red', target: TARGET, arguments: [{ text: 'red 2' }] });
  assert.equal(after.status, 202, after.text);
  const marker = await callFunction(stack, 'sendToUser', carol, { userId: 'alice', target: TARGET, arguments: [{ text: 'marker' }] });
  assert.equal(marker.status, 202, marker.text);
  assert.equal((await inbox.next()).args[1].text, 'marker');
  assert.equal(alice.hub.state, HubConnectionState.Connected);
});

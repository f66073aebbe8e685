// Demo page: sign in at the dev identity provider, connect through the app's negotiate function,
// then join groups and send to a group over the WebSocket (connection.invoke: the service forwards
// each call to the app's `upstream` function, which authorizes it for the connection's verified
// user), and send to a user through the app's sendToUser HTTP function. Everything user-supplied
// is written with textContent, never as HTML.
//
// The reference client pattern (copy this part into a real app):
// - `accessTokenFactory` asks the identity provider for a token on every call (`tokens.acquireSilent`,
//   which returns the cached token until shortly before it expires). With MSAL.js that call is
//   `msal.acquireTokenSilent({ scopes })`; with the Auth0 SPA SDK, `auth0.getTokenSilently()`.
//   A token captured once at sign-in would be sent after it expired: every reconnect would fail.
// - `withAutomaticReconnect()`, and the groups re-joined after a reconnect (a reconnect is a new
//   connection, so the service has forgotten its groups).
// - When no token can be had silently (the sign-in session ended, the provider refuses) or the app
//   refuses the token (401), the connection is stopped and the user is asked to sign in again: the
//   page never shows "Connected" while every call would fail.
// - Signing in as someone else stops the old connection first, so no message meant for the previous
//   user reaches the new one.
'use strict';

(() => {
  const API = '/api';
  const TARGET = 'newMessage';
  const DEFAULT_IDP = 'http://localhost:7072';
  // How long a sign-in lasts before the user must sign in again (an identity provider's session, or
  // MSAL's refresh token lifetime). Within it, tokens are renewed silently.
  const DEFAULT_SESSION_SECONDS = 8 * 60 * 60;
  // A cached token is renewed when less than this part of its lifetime is left (at most 5 minutes),
  // so a token is never sent in its last moments, when clock skew could make the app refuse it.
  const RENEW_FRACTION = 0.25;
  const RENEW_MAX_MS = 5 * 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const state = { user: null, connection: null, groups: new Set(), signInNeeded: false };

  // ?idp=… (tests, other ports), then the last one used, then the default. ?session=SECONDS and
  // ?tokenLifetime=SECONDS shorten the sign-in session and each token (the tests' way to see
  // expiry without waiting an hour); a real app gets both from its identity provider.
  const params = new URLSearchParams(window.location.search);
  $('idp-url').value = params.get('idp') || localStorage.getItem('demo.idp') || DEFAULT_IDP;
  const SESSION_SECONDS = Number(params.get('session')) || DEFAULT_SESSION_SECONDS;
  const TOKEN_LIFETIME_SECONDS = Number(params.get('tokenLifetime')) || undefined;

  function log(text, ok = true) {
    const item = document.createElement('li');
    item.className = ok ? '' : 'bad';
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, text);
    $('log').prepend(item);
  }

  function setResult(element, text, ok) {
    element.textContent = text;
    element.className = `result ${ok ? 'ok' : 'bad'}`;
  }

  function decodeJwtPayload(token) {
    const payload = token.split('.')[1] || '';
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function refresh() {
    const connection = state.connection;
    const connected = connection?.state === signalR.HubConnectionState.Connected;
    $('connect').disabled = !tokens.signedIn() || Boolean(connection);
    $('disconnect').disabled = !connection;
    for (const id of ['join', 'leave', 'send-group', 'send-user']) $(id).disabled = !connected;
    $('connection-state').textContent = connection ? connection.state.toLowerCase() : 'disconnected';
    $('joined-groups').textContent = state.groups.size ? [...state.groups].join(', ') : 'none';
    $('send-group-name').textContent = $('group').value || '…';
    const status = $('status');
    if (connected) {
      status.textContent = `Connected as ${$('connection-user').textContent}`;
      status.className = 'pill pill-on';
    } else if (connection?.state === signalR.HubConnectionState.Reconnecting) {
      status.textContent = 'Reconnecting…';
      status.className = 'pill pill-off';
    } else if (state.signInNeeded) {
      status.textContent = 'Sign in again';
      status.className = 'pill pill-bad';
    } else {
      status.textContent = state.user ? `Signed in as ${state.user}` : 'Signed out';
      status.className = 'pill pill-off';
    }
  }

  /** No token can be had without the user: the stand-in for MSAL's InteractionRequiredAuthError. */
  class SignInRequired extends Error {}

  // The token source. A real app replaces `request` with its identity provider's SDK: MSAL.js
  // `loginPopup`/`loginRedirect` for `signIn` and `acquireTokenSilent` for `acquireSilent`.
  // dev-idp signs a token for anyone who asks, so here the "session" is the sign-in's idp, user and
  // roles, kept in memory until SESSION_SECONDS have passed.
  const tokens = (() => {
    let session = null; // { idp, user, roles, ends }
    let cached = null; // { token, expires, renewAt }
    let pending = null;

    async function request(idp, user, roles, lifetimeSeconds) {
      const response = await fetch(`${idp}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sub: user, roles, ...(lifetimeSeconds ? { lifetimeSeconds } : {}) }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new SignInRequired(body.error_description || `HTTP ${response.status}`);
      const expires = decodeJwtPayload(body.access_token).exp * 1000;
      if (!(expires > Date.now())) {
        // Never shown as a valid sign-in: an expired token would be refused by every call.
        throw new SignInRequired('the identity provider issued a token that has already expired (check its clock)');
      }
      const lifetime = expires - Date.now();
      cached = { token: body.access_token, expires, renewAt: expires - Math.min(lifetime * RENEW_FRACTION, RENEW_MAX_MS) };
      return cached;
    }

    return {
      signedIn: () => Boolean(session) && Date.now() < session.ends,
      /** Interactive sign-in: starts a session and returns its first token. */
      async signIn(idp, user, roles) {
        session = null;
        cached = null;
        const first = await request(idp, user, roles, TOKEN_LIFETIME_SECONDS);
        session = { idp, user, roles, ends: Date.now() + SESSION_SECONDS * 1000 };
        return first;
      },
      signOut() {
        session = null;
        cached = null;
      },
      /** A valid token without user interaction, or SignInRequired. Concurrent callers share one request. */
      async acquireSilent() {
        if (!session || Date.now() >= session.ends) throw new SignInRequired('your sign-in session has ended');
        if (cached && Date.now() < cached.renewAt) return cached.token;
        pending ??= request(session.idp, session.user, session.roles, TOKEN_LIFETIME_SECONDS)
          .finally(() => { pending = null; });
        return (await pending).token;
      },
      sessionEnds: () => session?.ends,
    };
  })();

  let sessionTimer = null;

  /** Stops the connection and asks the user to sign in again, saying why. */
  async function requireSignIn(reason) {
    if (state.signInNeeded) return;
    state.signInNeeded = true;
    tokens.signOut();
    clearTimeout(sessionTimer);
    setResult($('signed-in-as'), `Please sign in again: ${reason}`, false);
    log(`sign-in needed: ${reason}`, false);
    refresh();
    await state.connection?.stop();
    refresh();
  }

  // 1. Sign in: ask the dev issuer for a token (JSON endpoint, CORS-enabled). Signing in as someone
  // else first stops the previous user's connection.
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const idp = $('idp-url').value.trim().replace(/\/+$/, '');
    const user = $('user').value.trim();
    const roles = $('roles').value.split(',').map((role) => role.trim()).filter(Boolean);
    if (state.connection) {
      log(`signing in as ${user}: disconnecting ${state.user ?? 'the previous user'} first`);
      await state.connection.stop();
    }
    clearTimeout(sessionTimer);
    state.user = null;
    try {
      const { expires } = await tokens.signIn(idp, user, roles);
      localStorage.setItem('demo.idp', idp);
      state.user = user;
      state.signInNeeded = false;
      const minutes = Math.max(1, Math.round((expires - Date.now()) / 60_000));
      setResult($('signed-in-as'), `Signed in as ${user} (token valid ${minutes} min, renewed silently)`, true);
      log(`signed in as ${user} at ${idp}`);
      // The session's end asks for a new sign-in even while the page sits idle.
      sessionTimer = setTimeout(() => requireSignIn('your sign-in session has ended'), tokens.sessionEnds() - Date.now());
    } catch (error) {
      tokens.signOut();
      setResult($('signed-in-as'), `Sign-in failed: ${error.message}`, false);
      log(`sign-in failed: ${error.message}`, false);
    }
    refresh();
  });

  // The SignalR client negotiates itself; this HTTP client only reads the user id the service
  // token carries (asrs.s.uid), which the handler took from the verified app token.
  class InspectingHttpClient extends signalR.DefaultHttpClient {
    async send(request) {
      const response = await super.send(request);
      if (request.url.includes(`${API}/negotiate`) && typeof response.content === 'string') {
        try {
          const info = JSON.parse(response.content);
          $('connection-user').textContent = decodeJwtPayload(info.accessToken)['asrs.s.uid'] ?? '(none)';
        } catch {
          $('connection-user').textContent = '(unreadable)';
        }
      }
      return response;
    }
  }

  // Keeps retrying while the stack is away (a restart, a network change), backing off to 10 s;
  // after 5 minutes it gives up and the page shows the connection as closed.
  const retryPolicy = {
    nextRetryDelayInMilliseconds: ({ previousRetryCount, elapsedMilliseconds, retryReason }) => {
      // A refused token is not a network problem: retrying cannot help, signing in can.
      if (isAuthFailure(retryReason)) {
        requireSignIn(retryReason.message);
        return null;
      }
      return elapsedMilliseconds < 5 * 60 * 1000 ? Math.min(500 * 2 ** previousRetryCount, 10_000) : null;
    },
  };

  /** True for errors that mean "this token is not accepted": sign in again, retrying will not help. */
  function isAuthFailure(error) {
    return error instanceof SignInRequired || error?.statusCode === 401 || /\b401\b|Unauthorized/.test(error?.message ?? '');
  }

  // 2. Connect through /api/negotiate. The factory runs before every negotiate, including each
  // automatic reconnect, so a reconnect an hour later still sends a valid token.
  $('connect').addEventListener('click', async () => {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(API, {
        accessTokenFactory: () => tokens.acquireSilent(),
        httpClient: new InspectingHttpClient(signalR.NullLogger.instance),
      })
      .withAutomaticReconnect(retryPolicy)
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    connection.on(TARGET, (stamp, message) => showMessage(stamp, message));
    connection.onreconnecting((error) => {
      log(`connection lost${error ? ` (${error.message})` : ''}; reconnecting`, false);
      if (error && isAuthFailure(error)) requireSignIn(error.message);
      refresh();
    });
    connection.onreconnected(async (connectionId) => {
      log(`reconnected (connection ${connectionId})`);
      // A new connection: the service has forgotten its groups, so join them again.
      for (const group of [...state.groups]) {
        if (!(await invokeHub('joinGroup', group))) state.groups.delete(group);
      }
      refresh();
    });
    connection.onclose((error) => {
      if (state.connection !== connection) return;
      state.connection = null;
      state.groups.clear();
      $('connection-user').textContent = '—';
      log(error ? `connection closed: ${error.message}` : 'disconnected', !error);
      if (error && isAuthFailure(error)) requireSignIn(error.message);
      refresh();
    });
    state.connection = connection;
    refresh();
    try {
      await connection.start();
      log(`connected (connection ${connection.connectionId})`);
    } catch (error) {
      if (state.connection === connection) state.connection = null;
      $('connection-user').textContent = '—';
      log(`connect failed: ${error.message}`, false);
      if (isAuthFailure(error)) await requireSignIn(error.message);
    }
    refresh();
  });

  $('disconnect').addEventListener('click', async () => {
    await state.connection?.stop();
  });

  // HTTP calls get their token the same way as the connection: silently, just before the call.
  async function callFunction(name, body) {
    let token;
    try {
      token = await tokens.acquireSilent();
    } catch (error) {
      await requireSignIn(error.message);
      return false;
    }
    const response = await fetch(`${API}/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    let detail = '';
    try {
      const json = await response.json();
      detail = json.error ? ` ${json.error}${json.message ? `: ${json.message}` : ''}` : '';
    } catch {
      detail = '';
    }
    log(`${name} → ${response.status}${detail}`, response.ok);
    if (response.status === 401) await requireSignIn(`the app refused the token:${detail}`);
    return response.ok;
  }

  // A hub method over the WebSocket. The promise resolves with the upstream's result, or rejects
  // with its error Completion (`forbidden: join`, …) when the policy refuses the call.
  async function invokeHub(method, ...args) {
    try {
      await state.connection.invoke(method, ...args);
      log(`${method}(${args.slice(0, 2).map((arg) => JSON.stringify(arg)).join(', ')}) → ok`);
      return true;
    } catch (error) {
      const { message } = error;
      log(`${method}(${JSON.stringify(args[0])}) refused: ${message}`, false);
      setResult($('invoke-error'), `${method} refused: ${message}`, false);
      return false;
    }
  }

  // 3. Groups: the handler adds or removes the connection's verified user, never a user named by
  // the client.
  $('group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const group = $('group').value.trim();
    if (await invokeHub('joinGroup', group)) state.groups.add(group);
    refresh();
  });

  $('leave').addEventListener('click', async () => {
    const group = $('group').value.trim();
    if (await invokeHub('leaveGroup', group)) state.groups.delete(group);
    refresh();
  });

  $('group').addEventListener('input', refresh);

  // 4. Send. The page claims no sender name: the handler writes the verified sender as the
  // first argument of every message, and receivers show that one.
  $('send-group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const group = $('group').value.trim();
    const text = $('send-group-text').value;
    const sent = await invokeHub('sendToGroup', group, TARGET, { via: `group ${group} (WebSocket)`, text });
    if (sent) $('send-group-text').value = '';
  });

  $('send-user-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const userId = $('send-user-id').value.trim();
    const text = $('send-user-text').value;
    const sent = await callFunction('sendToUser', {
      userId,
      target: TARGET,
      arguments: [{ via: `to ${userId} (HTTP)`, text }],
    });
    if (sent) $('send-user-text').value = '';
  });

  // `stamp` is the handler-written first argument {sender, source}: the verified sender. Any
  // name inside `message` is whatever the sending page wrote, so it is never shown as the sender.
  function showMessage(stamp, message) {
    const list = $('messages');
    list.querySelector('.empty')?.remove();
    const item = document.createElement('li');
    const verified = typeof stamp?.sender === 'string' && typeof stamp?.source === 'string';
    const cells = [
      ['time', new Date().toLocaleTimeString()],
      ['from', verified ? stamp.sender : '(unverified sender)'],
      ['text', `${message?.text ?? JSON.stringify(message)}`],
    ];
    for (const [name, value] of cells) {
      const cell = document.createElement('span');
      cell.className = name;
      cell.textContent = value;
      if (name === 'from') {
        // Only what the handler wrote goes in the sender's cell.
        if (verified) cell.dataset.source = stamp.source;
        const by = document.createElement('div');
        by.className = 'via';
        by.textContent = `verified by ${verified ? stamp.source : 'nobody'}`;
        cell.append(by);
      }
      if (name === 'text' && typeof message?.via === 'string') {
        // The route is what the sending page wrote: shown with the message, not as the sender.
        const route = document.createElement('div');
        route.className = 'via';
        route.textContent = `sent ${message.via}`;
        cell.append(route);
      }
      item.append(cell);
    }
    list.prepend(item);
  }

  refresh();
})();

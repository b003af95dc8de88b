'use strict';

// Offline: the app's functions run through createAppTester against a small stand-in for the broker on 127.0.0.1,
// to check the requests they send and how they read answers and errors. The live suite (tests/connectors in the
// broker's repository) runs the same functions against the real broker.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { after, before, test } = require('node:test');

process.env.NODE_ENV = 'test';
process.env.CLIENT_ID = 'client-zapier';
process.env.CLIENT_SECRET = 'secret-zapier';

const zapier = require('zapier-platform-core');
const App = require('../index');

const appTester = zapier.createAppTester(App);
const LINKS = Array.from({ length: 150 }, (_, i) => ({
  id: `lnk_${String(i).padStart(4, '0')}`,
  domain: 'nim.test',
  slug: `slug-${i}`,
  destination: `https://example.com/${i}`,
  clicks: i % 3,
  created_at: '2025-03-01T09:30:00Z',
  updated_at: '2025-03-01T09:30:00Z',
  created_by: 'zapier connection',
})).reverse();
const seen = [];
let server;
let refreshRefused = false;

const send = (response, status, body) => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(body === undefined ? '' : JSON.stringify(body));
};

const routes = {
  'POST /oauth/token': (request, body, response) => {
    const form = Object.fromEntries(new URLSearchParams(body));
    if (form.client_id !== 'client-zapier' || form.client_secret !== 'secret-zapier') {
      return send(response, 401, { error: 'invalid_client', error_description: 'Client authentication failed.' });
    }
    if (form.grant_type === 'refresh_token' && (refreshRefused || form.refresh_token !== 'refresh-1')) {
      return send(response, 400, { error: 'invalid_grant', error_description: 'The refresh token is no longer valid.' });
    }
    const number = form.grant_type === 'refresh_token' ? 2 : 1;
    return send(response, 200, {
      access_token: `access-${number}`,
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: `refresh-${number}`,
      scope: 'links:read links:write analytics:read hooks:write',
      account_id: 'acc_test',
    });
  },
  'GET /v1/me': (request, body, response) => {
    if (request.headers.authorization === 'Bearer revoked') {
      return send(response, 401, { error: 'reconnect_required', message: 'Reconnect.', reconnect: true });
    }
    return send(response, 200, { account_id: 'acc_test', workspace: { name: 'Acme' }, credential: { id: 'x' } });
  },
  'GET /v1/workspaces/acc_test/links': (request, body, response) => {
    const url = new URL(request.url, 'http://localhost');
    const limit = Number(url.searchParams.get('limit') || 50);
    const after = url.searchParams.get('starting_after');
    const start = after ? LINKS.findIndex((link) => link.id === after) + 1 : 0;
    const data = LINKS.slice(start, start + limit);
    return send(response, 200, { data, has_more: start + limit < LINKS.length });
  },
  'POST /v1/workspaces/acc_test/links': (request, body, response) => {
    const given = JSON.parse(body);
    if (given.slug === 'taken') {
      return send(response, 409, { error: 'conflict', message: 'The slug taken is already in use.' });
    }
    return send(response, 201, { ...LINKS[0], id: 'lnk_new', ...given });
  },
  'POST /v1/workspaces/acc_test/hooks': (request, body, response) =>
    send(response, 201, { id: 'hook_1', ...JSON.parse(body), secret: `whsec_${Buffer.from('k'.repeat(24)).toString('base64')}` }),
  'DELETE /v1/workspaces/acc_test/hooks/hook_1': (request, body, response) => send(response, 204),
  'DELETE /v1/workspaces/acc_test/hooks/hook_gone': (request, body, response) =>
    send(response, 404, { error: 'not_found', message: 'No hook with that id.' }),
  'DELETE /v1/workspaces/acc_test/hooks/hook_locked': (request, body, response) =>
    send(response, 409, { error: 'conflict', message: 'Try again later.' }),
};

before(async () => {
  server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const path = request.url.split('?')[0];
      seen.push({ method: request.method, path, url: request.url, headers: request.headers, body });
      const route = routes[`${request.method} ${path}`];
      return route ? route(request, body, response) : send(response, 404, { error: 'not_found', message: 'No.' });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.env.BASE_URL = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

const authData = { access_token: 'access-1', refresh_token: 'refresh-1', account_id: 'acc_test' };
const last = () => seen[seen.length - 1];

test('the authorize URL carries the client, state, redirect URI and response type', async () => {
  const url = new URL(
    await appTester(App.authentication.oauth2Config.authorizeUrl, {
      inputData: { state: 'st4te', redirect_uri: 'https://zapier.com/dashboard/auth/oauth/return/App1CLIAPI/' },
    }),
  );
  assert.equal(url.origin + url.pathname, `${process.env.BASE_URL}/oauth/authorize`);
  assert.equal(url.searchParams.get('client_id'), 'client-zapier');
  assert.equal(url.searchParams.get('state'), 'st4te');
  assert.equal(url.searchParams.get('response_type'), 'code');
  assert.equal(url.searchParams.get('redirect_uri'), 'https://zapier.com/dashboard/auth/oauth/return/App1CLIAPI/');
});

test('getAccessToken posts the code and PKCE verifier as a form and keeps the whole answer', async () => {
  const result = await appTester(App.authentication.oauth2Config.getAccessToken, {
    inputData: { code: 'c0de', redirect_uri: 'https://r.example/', code_verifier: 'v'.repeat(50) },
  });
  const form = Object.fromEntries(new URLSearchParams(last().body));
  assert.equal(last().headers['content-type'], 'application/x-www-form-urlencoded');
  assert.deepEqual(form, {
    client_id: 'client-zapier',
    client_secret: 'secret-zapier',
    code: 'c0de',
    grant_type: 'authorization_code',
    redirect_uri: 'https://r.example/',
    code_verifier: 'v'.repeat(50),
  });
  assert.equal(result.access_token, 'access-1');
  assert.equal(result.account_id, 'acc_test');
});

test('test and the connection label read /v1/me', async () => {
  const me = await appTester(App.authentication.test, { authData });
  assert.equal(last().headers.authorization, 'Bearer access-1');
  assert.equal(me.account_id, 'acc_test');
  assert.equal(await appTester(App.authentication.connectionLabel, { authData, inputData: me }), 'Acme');
});

test('a 401 reconnect_required becomes RefreshAuthError, and the refused refresh a clear error', async () => {
  // The core raises RefreshAuthError before the app's afterResponse: that handler never sees a 401.
  const seenByApp = [];
  const watched = { ...App, afterResponse: [(response, z) => (seenByApp.push(response.status), App.afterResponse[0](response, z))] };
  await assert.rejects(zapier.createAppTester(watched)(watched.authentication.test, { authData: { ...authData, access_token: 'revoked' } }), {
    name: 'RefreshAuthError',
  });
  assert.deepEqual(seenByApp, []);
  refreshRefused = true;
  try {
    await assert.rejects(appTester(App.authentication.oauth2Config.refreshAccessToken, { authData }), (error) => {
      assert.match(error.message, /no longer valid/);
      assert.match(error.message, /invalid_grant/);
      return true;
    });
  } finally {
    refreshRefused = false;
  }
  const refreshed = await appTester(App.authentication.oauth2Config.refreshAccessToken, { authData });
  assert.equal(Object.fromEntries(new URLSearchParams(last().body)).grant_type, 'refresh_token');
  assert.equal(refreshed.refresh_token, 'refresh-2');
});

test('subscribe registers the target URL for the event; unsubscribe deletes that hook', async () => {
  const hook = await appTester(App.triggers.new_link.operation.performSubscribe, {
    authData,
    targetUrl: 'https://hooks.zapier.com/hooks/standard/1/abc/',
  });
  assert.deepEqual(JSON.parse(last().body), {
    event: 'link.created',
    target_url: 'https://hooks.zapier.com/hooks/standard/1/abc/',
  });
  assert.equal(hook.id, 'hook_1');
  await appTester(App.triggers.link_clicked.operation.performSubscribe, { authData, targetUrl: 'https://h/' });
  assert.equal(JSON.parse(last().body).event, 'link.clicked');
  await appTester(App.triggers.new_link.operation.performUnsubscribe, { authData, subscribeData: hook });
  assert.equal(`${last().method} ${last().path}`, 'DELETE /v1/workspaces/acc_test/hooks/hook_1');
  // Already gone: unsubscribing still succeeds; any other refusal keeps the broker's sentence.
  const gone = await appTester(App.triggers.new_link.operation.performUnsubscribe, { authData, subscribeData: { id: 'hook_gone' } });
  assert.deepEqual(gone, {});
  await assert.rejects(
    appTester(App.triggers.new_link.operation.performUnsubscribe, { authData, subscribeData: { id: 'hook_locked' } }),
    /Try again later/,
  );
});

test('perform returns the delivered link and refuses a delivery with a bad signature', async () => {
  const secret = `whsec_${Buffer.from('k'.repeat(24)).toString('base64')}`;
  const event = { id: 'evt_1', type: 'link.created', account_id: 'acc_test', data: { link: LINKS[0] } };
  const content = JSON.stringify(event);
  const signature = crypto
    .createHmac('sha256', Buffer.from('k'.repeat(24)))
    .update(`msg_1.1700000000.${content}`)
    .digest('base64');
  const rawRequest = (value) => ({
    content,
    headers: { 'Http-Webhook-Id': 'msg_1', 'Http-Webhook-Timestamp': '1700000000', 'Http-Webhook-Signature': value },
  });
  const bundle = { authData, subscribeData: { id: 'hook_1', secret }, cleanedRequest: event };
  const links = await appTester(App.triggers.new_link.operation.perform, {
    ...bundle,
    rawRequest: rawRequest(`v1,${signature}`),
  });
  assert.deepEqual(links, [LINKS[0]]);
  await assert.rejects(
    appTester(App.triggers.new_link.operation.perform, { ...bundle, rawRequest: rawRequest('v1,AAAA') }),
    /not signed/,
  );
  const click = { ...event, type: 'link.clicked', data: { link: LINKS[0], click: { clicked_at: 'now' } } };
  const clicks = await appTester(App.triggers.link_clicked.operation.perform, { authData, cleanedRequest: click });
  assert.equal(clicks[0].id, 'evt_1');
  assert.equal(clicks[0].link_id, LINKS[0].id);
});

test('performList returns recent links as samples', async () => {
  const samples = await appTester(App.triggers.new_link.operation.performList, { authData });
  assert.equal(samples.length, 10);
  assert.equal(last().url, '/v1/workspaces/acc_test/links?limit=10');
});

test('shorten_link creates a link; a taken slug reads as the broker said it', async () => {
  const link = await appTester(App.creates.shorten_link.operation.perform, {
    authData,
    inputData: { destination: 'https://example.com/x', slug: 'promo' },
  });
  assert.deepEqual(JSON.parse(last().body), { destination: 'https://example.com/x', slug: 'promo' });
  assert.equal(link.slug, 'promo');
  await appTester(App.creates.shorten_link.operation.perform, {
    authData,
    inputData: { destination: 'https://example.com/y' },
  });
  assert.deepEqual(JSON.parse(last().body), { destination: 'https://example.com/y' });
  await assert.rejects(
    appTester(App.creates.shorten_link.operation.perform, {
      authData,
      inputData: { destination: 'https://example.com/x', slug: 'taken' },
    }),
    /already in use/,
  );
});

test('find_link pages through the list and matches slug (any case) or destination', async () => {
  const bySlug = await appTester(App.searches.find_link.operation.perform, {
    authData,
    inputData: { slug: 'SLUG-3' },
  });
  assert.deepEqual(bySlug.map((link) => link.id), ['lnk_0003']);
  assert.equal(last().url, '/v1/workspaces/acc_test/links?limit=100&starting_after=lnk_0050');
  const byDestination = await appTester(App.searches.find_link.operation.perform, {
    authData,
    inputData: { destination: 'https://example.com/120' },
  });
  assert.deepEqual(byDestination.map((link) => link.id), ['lnk_0120']);
  const none = await appTester(App.searches.find_link.operation.perform, { authData, inputData: { slug: 'nope' } });
  assert.deepEqual(none, []);
});

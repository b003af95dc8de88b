'use strict';

// Runs the compiled package the way n8n does, without n8n: the OAuth2 credential through @n8n/client-oauth2 with
// the options n8n's OAuth2 controller builds (packages/cli, oauth2-credential.controller.ts), and the nodes' methods
// with a small stand-in for n8n's execute and hook contexts whose requests carry the credential's token.
const crypto = require('node:crypto');
const { ClientOAuth2 } = require('@n8n/client-oauth2');

const { NimOAuth2Api } = require('../dist/credentials/NimOAuth2Api.credentials');
const { NimApi } = require('../dist/credentials/NimApi.credentials');
const { Nim } = require('../dist/nodes/Nim/Nim.node');
const { NimTrigger } = require('../dist/nodes/NimTrigger/NimTrigger.node');

const base64url = (buffer) => buffer.toString('base64url');

// The OAuth2 credential's values as n8n resolves them: its defaults (with `$self` expressions) and what the user
// entered. Style 'pkce' is the credential as shipped; 'header' and 'body' are n8n's other code-grant variants.
function oauthCredential({ baseUrl, clientId, clientSecret, style = 'pkce' }) {
  const values = { baseUrl, clientId, clientSecret };
  for (const property of new NimOAuth2Api().properties) {
    if (property.name in values) continue;
    const value = property.default;
    values[property.name] =
      typeof value === 'string' && value.startsWith('=')
        ? value.slice(1).replace(/\{\{\s*\$self\["(\w+)"\]\s*\}\}/g, (_, name) => values[name])
        : value;
  }
  if (style !== 'pkce') {
    values.grantType = 'authorizationCode';
    values.authentication = style;
  }
  return values;
}

// n8n's convertCredentialToOptions.
function clientOptions(credential, redirectUri) {
  return {
    clientId: credential.clientId,
    clientSecret: credential.clientSecret ?? '',
    accessTokenUri: credential.accessTokenUrl ?? '',
    authorizationUri: credential.authUrl ?? '',
    authentication: credential.authentication ?? 'header',
    redirectUri,
    scopes: (credential.scope ?? 'openid').split(','),
    scopesSeparator: credential.scope?.includes(',') ? ',' : ' ',
    ignoreSSLIssues: false,
  };
}

// n8n's getAuthUri: returns the URL to send the user to, and what n8n keeps for the callback.
function authorizeUri(credential, redirectUri, state) {
  const options = { ...clientOptions(credential, redirectUri), state };
  let codeVerifier;
  if (credential.authQueryParameters) {
    options.query = Object.fromEntries(new URLSearchParams(credential.authQueryParameters));
  }
  if (credential.grantType === 'pkce') {
    codeVerifier = base64url(crypto.randomBytes(32));
    const codeChallenge = base64url(crypto.createHash('sha256').update(codeVerifier).digest());
    options.query = { ...options.query, code_challenge: codeChallenge, code_challenge_method: 'S256' };
  }
  return { url: new ClientOAuth2(options).code.getUri(), codeVerifier };
}

// n8n's handleCallback: `callbackQuery` is the query string the broker redirected to.
async function exchangeCode(credential, redirectUri, callbackQuery, codeVerifier) {
  const options = clientOptions(credential, redirectUri);
  let extra = {};
  if (credential.grantType === 'pkce') {
    extra = { body: { code_verifier: codeVerifier } };
  } else if (credential.authentication === 'body') {
    extra = { body: { client_id: options.clientId, client_secret: options.clientSecret } };
    delete options.clientSecret;
  }
  const token = await new ClientOAuth2(options).code.getToken(`${redirectUri}?${callbackQuery}`, extra);
  return token.data;
}

// n8n-core's refresh after a 401: the stored token data merged with the answer (so a missing refresh_token stays).
async function refreshToken(credential, oauthTokenData) {
  const client = new ClientOAuth2({
    clientId: credential.clientId,
    clientSecret: credential.clientSecret,
    accessTokenUri: credential.accessTokenUrl,
    scopes: credential.scope.split(','),
    authentication: credential.authentication ?? 'header',
  });
  const token = client.createToken({ ...oauthTokenData }, oauthTokenData.token_type);
  const refreshed = await token.refresh();
  return { ...oauthTokenData, ...refreshed.data };
}

// What httpRequestWithAuthentication sends for each credential type.
function authorization(credentialType, credentials) {
  if (credentialType === 'nimOAuth2Api') return `Bearer ${credentials.oauthTokenData.access_token}`;
  const template = new NimApi().authenticate.properties.headers.Authorization;
  return template.replace(/^=/, '').replace('{{$credentials.apiKey}}', credentials.apiKey);
}

async function httpRequest(credentialType, credentials, options) {
  const url = new URL(options.url);
  for (const [key, value] of Object.entries(options.qs ?? {})) url.searchParams.set(key, String(value));
  const headers = { accept: 'application/json', authorization: authorization(credentialType, credentials) };
  let body;
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const response = await fetch(url, { method: options.method, headers, body });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const error = new Error(data.message || `Request failed with status code ${response.status}`);
    Object.assign(error, { httpCode: String(response.status), response: { status: response.status, data } });
    throw error;
  }
  return data;
}

// `setup`: {parameters, credentialType, credentials, staticData?, webhookUrl?, items?}
function context(setup) {
  const staticData = setup.staticData ?? {};
  return {
    staticData,
    getInputData: () => setup.items ?? [{ json: {} }],
    getNodeParameter: (name, _index, fallback) => (name in setup.parameters ? setup.parameters[name] : fallback),
    getCredentials: async (type) => {
      if (type !== setup.credentialType) throw new Error(`The node asked for ${type} credentials.`);
      return setup.credentials;
    },
    getNode: () => ({ id: 'node', name: 'Nim', type: 'n8n-nodes-nim.nim', typeVersion: 1, parameters: {} }),
    continueOnFail: () => false,
    getWorkflowStaticData: () => staticData,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    getNodeWebhookUrl: () => setup.webhookUrl,
    helpers: {
      httpRequestWithAuthentication: (type, options) => httpRequest(type, setup.credentials, options),
      returnJsonArray: (data) => (Array.isArray(data) ? data : [data]).map((json) => ({ json })),
      constructExecutionMetaData: (items, { itemData }) => items.map((item) => ({ ...item, pairedItem: itemData })),
    },
  };
}

async function execute(setup) {
  const [items] = await new Nim().execute.call(context(setup));
  return items.map((item) => item.json);
}

// Runs one of the trigger's webhook methods (checkExists, create, delete); returns its answer and the static data.
async function hook(method, setup) {
  const ctx = context(setup);
  const result = await new NimTrigger().webhookMethods.default[method].call(ctx);
  return { result, staticData: ctx.staticData };
}

// Runs the trigger's webhook() on a delivery as n8n received it: {headers, body (the raw text)}.
async function webhook(setup, delivery) {
  const responded = {};
  const response = {
    status(code) {
      responded.status = code;
      return response;
    },
    json(body) {
      responded.body = body;
      return response;
    },
  };
  const ctx = {
    ...context(setup),
    getRequestObject: () => ({ rawBody: Buffer.from(delivery.body) }),
    getHeaderData: () => delivery.headers,
    getBodyData: () => JSON.parse(delivery.body),
    getResponseObject: () => response,
  };
  const result = await new NimTrigger().webhook.call(ctx);
  return { result, responded };
}

module.exports = { oauthCredential, authorizeUri, exchangeCode, refreshToken, execute, hook, webhook };

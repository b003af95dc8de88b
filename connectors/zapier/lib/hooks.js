'use strict';

const crypto = require('crypto');

const { call, workspace } = require('./api');

const subscribe = (event) => (z, bundle) =>
  call(z, 'POST', `/v1/workspaces/${workspace(bundle)}/hooks`, {
    body: { event, target_url: bundle.targetUrl },
  });

// A hook that is already gone (deleted by the broker after its target answered 410, or by an admin) counts as
// unsubscribed. After a disconnect the DELETE gets a 401, which Zapier turns into a refused refresh: the broker has
// already disabled that connection's hooks itself, so nothing is left behind. Reconnecting is a new connection, and
// turning the Zap on again subscribes anew.
const unsubscribe = async (z, bundle) =>
  (await call(z, 'DELETE', `/v1/workspaces/${workspace(bundle)}/hooks/${encodeURIComponent(bundle.subscribeData.id)}`, {
    missingOk: true,
  })) ?? {};

// Zapier passes the delivery's headers with an `Http-` prefix; accept either spelling.
const header = (headers, name) => {
  const wanted = [name, `http-${name}`];
  const found = Object.keys(headers || {}).find((key) => wanted.includes(key.toLowerCase()));
  return found ? headers[found] : undefined;
};

// Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's bytes
// (the part after `whsec_`, base64-decoded, when the secret has that form).
const verifySignature = (z, bundle) => {
  const raw = bundle.rawRequest;
  const secret = bundle.subscribeData && bundle.subscribeData.secret;
  if (!raw || typeof raw.content !== 'string' || !secret) {
    return;
  }
  const id = header(raw.headers, 'webhook-id');
  const timestamp = header(raw.headers, 'webhook-timestamp');
  const signatures = String(header(raw.headers, 'webhook-signature') || '').split(' ');
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const expected = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${raw.content}`).digest('base64');
  const valid = signatures.some((candidate) => {
    const [version, value] = candidate.split(',');
    return (
      version === 'v1' &&
      value &&
      value.length === expected.length &&
      crypto.timingSafeEqual(Buffer.from(value), Buffer.from(expected))
    );
  });
  if (!valid) {
    throw new z.errors.Error('The delivery is not signed with this subscription\'s secret.', 'invalid_signature', 401);
  }
};

module.exports = { subscribe, unsubscribe, verifySignature };

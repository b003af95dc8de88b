'use strict';

// The broker's public URL serves both OAuth and the workspace API.
const baseUrl = () => (process.env.BASE_URL || '').replace(/\/+$/, '');

// Every workspace API call goes through here, so the manifest check can find each method and path together.
const call = async (z, method, path, options = {}) => {
  const response = await z.request({ method, url: `${baseUrl()}${path}`, ...options });
  return response.data;
};

const workspace = (bundle) => encodeURIComponent(bundle.authData.account_id);

const includeBearerToken = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.access_token && !request.headers.Authorization) {
    request.headers.Authorization = `Bearer ${bundle.authData.access_token}`;
  }
  return request;
};

// 401 reconnect_required (connection gone) and token_expired both go through Zapier's refresh: the first ends with
// a refused refresh, which makes Zapier ask the user to reconnect. Other errors keep the broker's own sentence.
const handleErrors = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) {
    return response;
  }
  let body = {};
  try {
    body = JSON.parse(response.content) || {};
  } catch {
    // not JSON: fall through with the status alone
  }
  if (response.status === 401 && ['reconnect_required', 'token_expired'].includes(body.error)) {
    throw new z.errors.RefreshAuthError(body.message || 'The connection needs to be refreshed.');
  }
  const message = body.message || body.error_description || `The Nim API answered ${response.status}.`;
  throw new z.errors.Error(message, body.error || `http_${response.status}`, response.status);
};

module.exports = { baseUrl, call, workspace, includeBearerToken, handleErrors };

'use strict';

// The broker's public URL serves both OAuth and the workspace API.
const baseUrl = () => (process.env.BASE_URL || '').replace(/\/+$/, '');

// Every workspace API call goes through here, so the manifest check can find each method and path together.
// `missingOk`: a 404 answers null instead of failing (a hook already removed is what an unsubscribe wants).
const call = async (z, method, path, options = {}) => {
  const { missingOk, ...request } = options;
  const response = await z.request({ method, url: `${baseUrl()}${path}`, ...request, skipThrowForStatus: Boolean(missingOk) });
  if (missingOk) {
    if (response.status === 404) return null;
    handleErrors({ status: response.status, content: response.content }, z);
  }
  return response.data;
};

const workspace = (bundle) => encodeURIComponent(bundle.authData.account_id);

const includeBearerToken = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.access_token && !request.headers.Authorization) {
    request.headers.Authorization = `Bearer ${bundle.authData.access_token}`;
  }
  return request;
};

// Errors keep the broker's own sentence. A 401 never gets here: with autoRefresh, zapier-platform-core turns every
// 401 into RefreshAuthError before the app's afterResponse runs, and Zapier then calls refreshAccessToken. When the
// connection was disconnected, that refresh is refused (400 invalid_grant) and passes through here, so the user
// reads the broker's explanation ("... reconnect the integration.") from the refresh's error_description.
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
  const message = body.message || body.error_description || `The Nim API answered ${response.status}.`;
  throw new z.errors.Error(message, body.error || `http_${response.status}`, response.status);
};

module.exports = { baseUrl, call, workspace, includeBearerToken, handleErrors };

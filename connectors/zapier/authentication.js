'use strict';

const { call } = require('./lib/api');

// The scopes of the endpoints this app calls and of the events its triggers subscribe to (see manifest.json):
// analytics:read is what receiving link.clicked takes.
const SCOPE = 'links:read links:write analytics:read hooks:write';

const TOKEN_REQUEST = {
  url: '{{process.env.BASE_URL}}/oauth/token',
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
};

const test = (z) => call(z, 'GET', '/v1/me');

module.exports = {
  type: 'oauth2',
  test,
  connectionLabel: (z, bundle) => bundle.inputData.workspace.name,
  oauth2Config: {
    authorizeUrl: {
      url: '{{process.env.BASE_URL}}/oauth/authorize',
      params: {
        client_id: '{{process.env.CLIENT_ID}}',
        state: '{{bundle.inputData.state}}',
        redirect_uri: '{{bundle.inputData.redirect_uri}}',
        response_type: 'code',
      },
    },
    getAccessToken: {
      ...TOKEN_REQUEST,
      body: {
        client_id: '{{process.env.CLIENT_ID}}',
        client_secret: '{{process.env.CLIENT_SECRET}}',
        code: '{{bundle.inputData.code}}',
        grant_type: 'authorization_code',
        redirect_uri: '{{bundle.inputData.redirect_uri}}',
        code_verifier: '{{bundle.inputData.code_verifier}}',
      },
    },
    refreshAccessToken: {
      ...TOKEN_REQUEST,
      body: {
        client_id: '{{process.env.CLIENT_ID}}',
        client_secret: '{{process.env.CLIENT_SECRET}}',
        refresh_token: '{{bundle.authData.refresh_token}}',
        grant_type: 'refresh_token',
      },
    },
    scope: SCOPE,
    autoRefresh: true,
    enablePkce: true,
  },
};

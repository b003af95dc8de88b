'use strict';

const { call, workspace } = require('./api');

// The fields a link has in every answer and webhook payload; triggers and actions output exactly these.
const LINK_FIELDS = [
  { key: 'id', label: 'Link ID' },
  { key: 'domain', label: 'Domain' },
  { key: 'slug', label: 'Slug' },
  { key: 'destination', label: 'Destination URL' },
  { key: 'clicks', label: 'Clicks', type: 'integer' },
  { key: 'created_at', label: 'Created At', type: 'datetime' },
  { key: 'updated_at', label: 'Updated At', type: 'datetime' },
  { key: 'created_by', label: 'Created By' },
  { key: 'expires_at', label: 'Expires At (empty: never)', type: 'datetime' },
  { key: 'status', label: 'Status (active or expired)' },
];

const SAMPLE_LINK = {
  id: 'lnk_4fQ2k9LmZx0aB7c1',
  domain: 'nim.example',
  slug: 'spring-sale',
  destination: 'https://shop.example.com/spring',
  clicks: 0,
  created_at: '2025-03-01T09:30:00Z',
  updated_at: '2025-03-01T09:30:00Z',
  created_by: 'zapier connection',
  expires_at: null,
  status: 'active',
};

const listLinks = (z, bundle, params = {}) =>
  call(z, 'GET', `/v1/workspaces/${workspace(bundle)}/links`, { params });

module.exports = { LINK_FIELDS, SAMPLE_LINK, listLinks };

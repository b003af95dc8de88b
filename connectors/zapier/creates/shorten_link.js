'use strict';

const { call, workspace } = require('../lib/api');
const { LINK_FIELDS, SAMPLE_LINK } = require('../lib/links');

const perform = (z, bundle) => {
  const body = { destination: bundle.inputData.destination };
  if (bundle.inputData.slug) {
    body.slug = bundle.inputData.slug;
  }
  return call(z, 'POST', `/v1/workspaces/${workspace(bundle)}/links`, { body });
};

module.exports = {
  key: 'shorten_link',
  noun: 'Link',
  display: {
    label: 'Shorten Link',
    description: 'Creates a short link to a destination URL.',
  },
  operation: {
    inputFields: [
      { key: 'destination', label: 'Destination URL', type: 'string', required: true, helpText: 'An http or https URL.' },
      {
        key: 'slug',
        label: 'Slug',
        type: 'string',
        required: false,
        helpText: 'Letters, digits, `-` and `_`. Leave empty for a random slug.',
      },
    ],
    perform,
    sample: SAMPLE_LINK,
    outputFields: LINK_FIELDS,
  },
};

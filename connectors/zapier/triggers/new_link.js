'use strict';

const { subscribe, unsubscribe, verifySignature } = require('../lib/hooks');
const { LINK_FIELDS, SAMPLE_LINK, listLinks } = require('../lib/links');

const perform = (z, bundle) => {
  verifySignature(z, bundle);
  return [bundle.cleanedRequest.data.link];
};

const performList = async (z, bundle) => (await listLinks(z, bundle, { limit: 10 })).data;

module.exports = {
  key: 'new_link',
  noun: 'Link',
  display: {
    label: 'New Link',
    description: 'Triggers when a short link is created in your workspace.',
  },
  operation: {
    type: 'hook',
    performSubscribe: subscribe('link.created'),
    performUnsubscribe: unsubscribe,
    perform,
    performList,
    sample: SAMPLE_LINK,
    outputFields: LINK_FIELDS,
  },
};

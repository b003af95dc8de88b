'use strict';

const { subscribe, unsubscribe, verifySignature } = require('../lib/hooks');
const { LINK_FIELDS, SAMPLE_LINK, listLinks } = require('../lib/links');

// One output item per click: the link as it was after the click, plus the click itself.
const clickedLink = (link, click, eventId) => ({
  ...link,
  id: eventId || `${link.id}-${link.clicks}`,
  link_id: link.id,
  click: click || {},
});

const perform = (z, bundle) => {
  verifySignature(z, bundle);
  const event = bundle.cleanedRequest;
  return [clickedLink(event.data.link, event.data.click, event.id)];
};

// Samples: recent links that have been clicked, shaped like a click event.
const performList = async (z, bundle) => {
  const links = (await listLinks(z, bundle, { limit: 10 })).data;
  return links.filter((link) => link.clicks > 0).map((link) => clickedLink(link));
};

module.exports = {
  key: 'link_clicked',
  noun: 'Click',
  display: {
    label: 'Link Clicked',
    description: 'Triggers each time someone follows one of your short links.',
  },
  operation: {
    type: 'hook',
    performSubscribe: subscribe('link.clicked'),
    performUnsubscribe: unsubscribe,
    perform,
    performList,
    sample: clickedLink(SAMPLE_LINK, { clicked_at: '2025-03-01T10:00:00Z', referrer: 'news.example' }, 'evt_1'),
    outputFields: [
      { key: 'id', label: 'Event ID' },
      { key: 'link_id', label: 'Link ID' },
      ...LINK_FIELDS.filter((field) => field.key !== 'id'),
      { key: 'click__clicked_at', label: 'Clicked At', type: 'datetime' },
      { key: 'click__referrer', label: 'Referrer Host' },
    ],
  },
};
